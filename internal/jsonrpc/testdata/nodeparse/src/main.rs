//! nodeparse reads JSON-RPC messages the way a Substrate node does, and
//! prints what it read, for wssgate's FuzzNodeDifferential.
//!
//! A Substrate node's RPC server is jsonrpsee (polkadot-sdk uses
//! jsonrpsee 0.24.x). The request types below are copied from
//! jsonrpsee-types 0.24 (src/request.rs: Request, Notification,
//! InvalidRequest; src/params.rs: Id, TwoPointZero) with their serde
//! attributes; the `extensions` fields (`#[serde(skip)]`) are left out, which
//! changes nothing in how they deserialize. `classify` follows jsonrpsee-server
//! 0.24: src/transport/ws.rs background_task (and src/transport/http.rs
//! read_body, which skips leading whitespace the same way) chooses single or
//! batch, then src/server.rs handle_rpc_call tries Request, then Notification,
//! then InvalidRequest (jsonrpsee-core 0.24 src/server/helpers.rs
//! prepare_error), and for a batch BatchResponseBuilder::finish answers an
//! empty batch with an invalid request.
//!
//! Protocol: stdin carries messages, each as a 4-byte big-endian length and
//! that many bytes. For each, one line goes to stdout: tab-separated tokens,
//! where ids and methods are written as serde_json serialises them:
//!
//!   parse                       the node answers -32700, id null
//!   invalid <id>                the node answers -32600 with that id
//!   call <id> <method>          the node runs method and answers with id
//!   notif <method>              the node runs method and never answers
//!   empty                       an empty batch: -32600, id null
//!   batch <element>...          one of invalid/call/notif per element
//!
//! The process lives until stdin ends, so a fuzzer pays for it once.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufWriter, Read, Write};

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_derive::Deserialize;
use serde_json::value::RawValue;

/// jsonrpsee-types 0.24 src/params.rs: JSON-RPC v2 marker type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TwoPointZero;

struct TwoPointZeroVisitor;

impl<'de> Visitor<'de> for TwoPointZeroVisitor {
    type Value = TwoPointZero;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(r#"a string "2.0""#)
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E>
    where
        E: de::Error,
    {
        match s {
            "2.0" => Ok(TwoPointZero),
            _ => Err(de::Error::invalid_value(Unexpected::Str(s), &self)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TwoPointZero {
    fn deserialize<D>(deserializer: D) -> Result<TwoPointZero, D::Error>
    where
        D: Deserializer<'de>,
    {
        deserializer.deserialize_str(TwoPointZeroVisitor)
    }
}

/// jsonrpsee-types 0.24 src/params.rs: Request Id.
#[derive(Debug, PartialEq, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(untagged)]
pub enum Id<'a> {
    /// Null
    Null,
    /// Numeric id
    Number(u64),
    /// String id
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

/// jsonrpsee-types 0.24 src/request.rs: JSON-RPC request object.
#[derive(Deserialize, Debug)]
pub struct Request<'a> {
    /// JSON-RPC version.
    pub jsonrpc: TwoPointZero,
    /// Request ID
    #[serde(borrow)]
    pub id: Id<'a>,
    /// Name of the method to be invoked.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// Parameter values of the request.
    #[serde(borrow)]
    pub params: Option<Cow<'a, RawValue>>,
}

/// jsonrpsee-types 0.24 src/request.rs: JSON-RPC Invalid request.
#[derive(Deserialize, Debug, PartialEq, Clone)]
pub struct InvalidRequest<'a> {
    /// Request ID
    #[serde(borrow)]
    pub id: Id<'a>,
}

/// jsonrpsee-types 0.24 src/request.rs: JSON-RPC notification.
#[derive(Deserialize, Debug)]
pub struct Notification<'a, T> {
    /// JSON-RPC version.
    pub jsonrpc: TwoPointZero,
    /// Name of the method to be invoked.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// Parameter values of the request.
    pub params: T,
}

/// jsonrpsee-server 0.24 src/server.rs: `type Notif<'a> = Notification<'a, Option<&'a JsonRawValue>>;`
type Notif<'a> = Notification<'a, Option<&'a RawValue>>;

fn id_token(id: &Id) -> String {
    match id {
        Id::Null => "null".to_string(),
        Id::Number(n) => n.to_string(),
        Id::Str(s) => serde_json::to_string(s.as_ref()).expect("a string serialises"),
    }
}

fn method_token(m: &str) -> String {
    serde_json::to_string(m).expect("a string serialises")
}

/// One batch element, as handle_rpc_call's batch loop reads it: call.get()
/// through serde_json::from_str.
fn element(call: &str, out: &mut String) {
    if let Ok(req) = serde_json::from_str::<Request>(call) {
        out.push_str("\tcall\t");
        out.push_str(&id_token(&req.id));
        out.push('\t');
        out.push_str(&method_token(&req.method));
    } else if let Ok(notif) = serde_json::from_str::<Notif>(call) {
        out.push_str("\tnotif\t");
        out.push_str(&method_token(&notif.method));
    } else {
        // "valid JSON but could be not parsable as `InvalidRequest`"
        let id = match serde_json::from_str::<InvalidRequest>(call) {
            Ok(err) => err.id,
            Err(_) => Id::Null,
        };
        out.push_str("\tinvalid\t");
        out.push_str(&id_token(&id));
    }
}

fn classify(data: &[u8]) -> String {
    // ws.rs: only the first 128 bytes are searched, with Rust's
    // is_ascii_whitespace (which, unlike JSON, includes form feed).
    let first_non_whitespace = data.iter().enumerate().take(128).find(|(_, byte)| !byte.is_ascii_whitespace());
    let (idx, is_single) = match first_non_whitespace {
        Some((start, b'{')) => (start, true),
        Some((start, b'[')) => (start, false),
        _ => return "parse".to_string(),
    };
    let body = &data[idx..];
    if is_single {
        if let Ok(req) = serde_json::from_slice::<Request>(body) {
            format!("call\t{}\t{}", id_token(&req.id), method_token(&req.method))
        } else if let Ok(notif) = serde_json::from_slice::<Notif>(body) {
            format!("notif\t{}", method_token(&notif.method))
        } else {
            // jsonrpsee-core helpers.rs prepare_error.
            match serde_json::from_slice::<InvalidRequest>(body) {
                Ok(InvalidRequest { id }) => format!("invalid\t{}", id_token(&id)),
                Err(_) => "parse".to_string(),
            }
        }
    } else {
        // BatchRequestConfig::Unlimited, the node's default.
        match serde_json::from_slice::<Vec<&RawValue>>(body) {
            Ok(batch) if batch.is_empty() => "empty".to_string(),
            Ok(batch) => {
                let mut out = String::from("batch");
                for call in batch {
                    element(call.get(), &mut out);
                }
                out
            }
            Err(_) => "parse".to_string(),
        }
    }
}

fn main() {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut output = BufWriter::new(stdout.lock());
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("nodeparse: read: {e}"),
        }
        buf.resize(u32::from_be_bytes(len) as usize, 0);
        input.read_exact(&mut buf).expect("nodeparse: short message");
        let line = classify(&buf);
        output.write_all(line.as_bytes()).expect("nodeparse: write");
        output.write_all(b"\n").expect("nodeparse: write");
        output.flush().expect("nodeparse: flush");
    }
}
