package wssproxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// policySafeMethods are calls wallets and explorers make; no default may refuse them.
var policySafeMethods = []string{
	"chain_getBlock",
	"chain_getBlockHash",
	"chain_subscribeNewHeads",
	"state_getMetadata",
	"state_getStorage",
	"state_call",
	"system_health",
	"system_chain",
	"system_reservedPeers",
	"system_accountNextIndex",
	"rpc_methods",
	"author_submitExtrinsic",
	"author_submitAndWatchExtrinsic",
	"author_pendingExtrinsics",
	"chainHead_v1_follow",
}

func TestDefaultPolicyDeniesUnsafeMethods(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	for _, m := range UnsafeMethods {
		err := p.Check(m)
		var me *MethodError
		if !errors.As(err, &me) || me.Method != m {
			t.Errorf("Check(%q) = %v, want a *MethodError for it", m, err)
			continue
		}
		want := "wssproxy: method " + m + " is not allowed: unsafe node method (" +
			unsafeMethodKinds[m] + "); denied by the gateway's default policy"
		if err.Error() != want {
			t.Errorf("Check(%q) = %q, want %q", m, err, want)
		}
	}
}

func TestDefaultPolicyAllowsSafeMethods(t *testing.T) {
	t.Parallel()
	for _, p := range []*Policy{DefaultPolicy(), nil} {
		for _, m := range policySafeMethods {
			if err := p.Check(m); err != nil {
				t.Errorf("%v.Check(%q) = %v, want nil", p, m, err)
			}
		}
	}
}

func TestNilPolicyIsDefault(t *testing.T) {
	t.Parallel()
	var p *Policy
	if err := p.Check("author_insertKey"); err == nil {
		t.Error("nil Policy allowed author_insertKey")
	}
	if err := p.Validate(); err != nil {
		t.Errorf("nil Policy Validate = %v", err)
	}
}

func TestUnsafeMethodsTable(t *testing.T) {
	t.Parallel()
	var kinds []string
	for m := range unsafeMethodKinds {
		kinds = append(kinds, m)
	}
	listed := slices.Clone(UnsafeMethods)
	slices.Sort(listed)
	slices.Sort(kinds)
	if diff := cmp.Diff(listed, kinds); diff != "" {
		t.Errorf("UnsafeMethods vs unsafeMethodKinds (-list +kinds):\n%s", diff)
	}
	if c := slices.Compact(slices.Clone(listed)); len(c) != len(listed) {
		t.Error("UnsafeMethods has duplicates")
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("DefaultPolicy().Validate() = %v", err)
	}
}

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func() *Policy
		// method -> "" if allowed, else the MethodError reason
		want map[string]string
	}{
		{
			name:    "zero policy is the safe default",
			prepare: func() *Policy { return &Policy{} },
			want: map[string]string{
				"author_insertKey": "unsafe node method (keystore); denied by the gateway's default policy",
				"anything":         "", "": "",
			},
		},
		{
			name:    "an empty allow list exposes nothing unsafe",
			prepare: func() *Policy { return &Policy{Allow: []string{}, Deny: []string{}} },
			want: map[string]string{
				"author_insertKey": "unsafe node method (keystore); denied by the gateway's default policy",
				"chain_getBlock":   "",
			},
		},
		{
			name:    "an allow-all pattern exposes nothing unsafe",
			prepare: func() *Policy { return &Policy{Allow: []string{"*"}} },
			want: map[string]string{
				"author_insertKey": "unsafe node method (keystore); denied by the gateway's default policy",
				"chain_getBlock":   "",
			},
		},
		{
			name:    "AllowAll",
			prepare: AllowAll,
			want:    map[string]string{"author_rotateKeys": "", "system_addLogFilter": ""},
		},
		{
			name:    "names match case-sensitively",
			prepare: DefaultPolicy,
			want: map[string]string{
				"author_insertKey":  "unsafe node method (keystore); denied by the gateway's default policy",
				"Author_insertKey":  "", // the node has no such method
				"author_insertKey ": "",
			},
		},
		{
			name: "allow list",
			prepare: func() *Policy {
				return &Policy{Allow: []string{"chain_*", "state_getMetadata", "system_health"}}
			},
			want: map[string]string{
				"chain_getBlock":          "",
				"chain_":                  "",
				"state_getMetadata":       "",
				"state_getMetadataX":      "not in the gateway's Policy.Allow list",
				"state_getStorage":        "not in the gateway's Policy.Allow list",
				"chai":                    "not in the gateway's Policy.Allow list",
				"author_insertKey":        "not in the gateway's Policy.Allow list",
				"system_health":           "",
				"chain_subscribeNewHeads": "",
			},
		},
		{
			name: "deny wins over allow",
			prepare: func() *Policy {
				return &Policy{
					Allow: []string{"chain_*", "author_*"},
					Deny:  []string{"chain_subscribeAllHeads", "author_insertKey", "author_has*"},
				}
			},
			want: map[string]string{
				"chain_getBlock":          "",
				"chain_subscribeAllHeads": `denied by the gateway's Policy.Deny entry "chain_subscribeAllHeads"`,
				"author_insertKey":        "unsafe node method (keystore); denied by the gateway's Policy.Deny",
				"author_hasKey":           `denied by the gateway's Policy.Deny entry "author_has*"`,
				"author_submitExtrinsic":  "",
				"state_getMetadata":       "not in the gateway's Policy.Allow list",
			},
		},
		{
			name: "longest deny prefix is named",
			prepare: func() *Policy {
				return &Policy{Deny: []string{"state_*", "state_get*"}}
			},
			want: map[string]string{
				"state_getPairs":     `denied by the gateway's Policy.Deny entry "state_get*"`,
				"state_queryStorage": `denied by the gateway's Policy.Deny entry "state_*"`,
				"chain_getBlock":     "",
			},
		},
		{
			name:    "deny star refuses everything",
			prepare: func() *Policy { return &Policy{Allow: []string{"*"}, Deny: []string{"*"}} },
			want:    map[string]string{"system_health": `denied by the gateway's Policy.Deny entry "*"`},
		},
		{
			name:    "allow star with a deny list",
			prepare: func() *Policy { return &Policy{Allow: []string{"*"}, Deny: []string{"system_peers"}} },
			want: map[string]string{
				"system_health": "",
				"system_peers":  "unsafe node method (node peers); denied by the gateway's Policy.Deny",
			},
		},
		{
			name: "default policy extended",
			prepare: func() *Policy {
				p := DefaultPolicy()
				p.Deny = append(p.Deny, "state_getKeys")
				return p
			},
			want: map[string]string{
				"state_getKeys":  `denied by the gateway's Policy.Deny entry "state_getKeys"`,
				"system_peers":   "unsafe node method (node peers); denied by the gateway's default policy",
				"chain_getBlock": "",
			},
		},
		{
			name:    "invalid policy refuses everything",
			prepare: func() *Policy { return &Policy{Allow: []string{"chain_*_x"}} },
			want: map[string]string{
				"chain_getBlock": "the gateway's method policy is invalid",
				"system_health":  "the gateway's method policy is invalid",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.prepare()
			got := map[string]string{}
			for m := range tt.want {
				got[m] = policyReason(t, m, p.Check(m))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check results (-want +got):\n%s", diff)
			}
		})
	}
}

func policyReason(t *testing.T, method string, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var me *MethodError
	if !errors.As(err, &me) || me.Method != method {
		t.Fatalf("Check(%q) = %#v, want *MethodError", method, err)
	}
	return me.Reason
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	p := &Policy{
		Allow: []string{"chain_*", "", "state_*get"},
		Deny:  []string{"a", "b", "*x*", "sys tem", "ok*", "tab\t"},
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	want := []string{
		`wssproxy: Policy.Allow[1] "": empty method name`,
		`wssproxy: Policy.Allow[2] "state_*get": "*" is allowed only at the end, as a prefix pattern`,
		`wssproxy: Policy.Deny[2] "*x*": "*" is allowed only at the end, as a prefix pattern`,
		`wssproxy: Policy.Deny[3] "sys tem": contains white space or a control character`,
		`wssproxy: Policy.Deny[5] "tab\t": contains white space or a control character`,
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
	for _, ok := range []*Policy{{}, AllowAll(), DefaultPolicy(), {Allow: []string{"*"}, Deny: []string{"x_*"}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", ok, err)
		}
	}
}

func TestPolicyCheckAllocs(t *testing.T) {
	policies := map[string]*Policy{
		"default": DefaultPolicy(),
		"allow":   {Allow: []string{"chain_*", "state_getMetadata"}, Deny: []string{"chain_x*"}},
	}
	for name, p := range policies {
		for _, m := range []string{"chain_getBlock", "state_getMetadata"} {
			if err := p.Check(m); err != nil {
				t.Fatalf("%s: Check(%q) = %v", name, m, err)
			}
			if n := testing.AllocsPerRun(100, func() { _ = p.Check(m) }); n != 0 {
				t.Errorf("%s: Check(%q) allocates %v times, want 0", name, m, n)
			}
		}
	}
}

func TestPolicyConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	p := &Policy{Deny: []string{"author_*"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if p.Check("author_insertKey") == nil || p.Check("chain_getBlock") != nil {
				t.Error("concurrent first Check gave a wrong answer")
			}
		})
	}
	wg.Wait()
}

func BenchmarkPolicyCheck(b *testing.B) {
	p := DefaultPolicy()
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Check("chain_getBlock")
	}
}

func ExamplePolicy() {
	// The default: everything but the node's unsafe methods.
	def := DefaultPolicy()
	fmt.Println(def.Check("chain_getBlock"))
	fmt.Println(def.Check("author_insertKey"))

	// An allow list, with a deny list that wins over it.
	p := &Policy{
		Allow: []string{"chain_*", "state_getMetadata", "system_health"},
		Deny:  []string{"chain_subscribeAllHeads"},
	}
	if err := p.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range []string{"chain_getHeader", "chain_subscribeAllHeads", "state_getStorage"} {
		fmt.Println(p.Check(m))
	}
	// Output:
	// <nil>
	// wssproxy: method author_insertKey is not allowed: unsafe node method (keystore); denied by the gateway's default policy
	// <nil>
	// wssproxy: method chain_subscribeAllHeads is not allowed: denied by the gateway's Policy.Deny entry "chain_subscribeAllHeads"
	// wssproxy: method state_getStorage is not allowed: not in the gateway's Policy.Allow list
}

func TestPolicyCheckParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy *Policy
		method string
		params string
		want   string // substring of the refusal; "" if allowed
	}{
		{"storage subscription with keys", nil, "state_subscribeStorage", `[["0x26aa"]]`, ""},
		{"storage subscription with named keys", nil, "state_subscribeStorage", `{"keys":["0x26aa"]}`, ""},
		{"storage subscription without params", nil, "state_subscribeStorage", ``, "non-empty list of keys"},
		{"storage subscription with no keys", nil, "state_subscribeStorage", `[]`, "non-empty list of keys"},
		{"storage subscription with null keys", nil, "state_subscribeStorage", `[null]`, "non-empty list of keys"},
		{"storage subscription with an empty key list", nil, "state_subscribeStorage", `[ [ ] ]`, "non-empty list of keys"},
		{"storage subscription with empty named keys", &Policy{}, "state_subscribeStorage", `{"keys":[]}`, "non-empty list of keys"},
		{"storage size refused by default", nil, "state_getStorageSize", `["0x"]`, "Policy.AllowStorageScans"},
		{"storage size at refused by default", &Policy{}, "state_getStorageSizeAt", `["0x", null]`, "Policy.AllowStorageScans"},
		{"storage size allowed on request", &Policy{AllowStorageScans: true}, "state_getStorageSize", `["0x"]`, ""},
		{"AllowAll lifts the parameter rules", AllowAll(), "state_subscribeStorage", `[]`, ""},
		{"the method rule comes first", nil, "author_insertKey", `[]`, "unsafe node method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var params []byte
			if tt.params != "" {
				params = []byte(tt.params)
			}
			err := tt.policy.CheckParams(tt.method, params)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckParams(%q, %s) = %v, want nil", tt.method, tt.params, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckParams(%q, %s) = %v, want an error containing %q", tt.method, tt.params, err, tt.want)
			}
		})
	}
}
