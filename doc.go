// Package wssgate puts a secure wss:// front door on a blockchain node's
// plain ws:// JSON-RPC port.
//
// See the wssproxy, certs and ratelimit packages.
package wssgate
