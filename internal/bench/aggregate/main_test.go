package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAggregate(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		`{"round":1,"target":"direct-wss","scenario":"pipe100","exit":0,"result":{"msgs_per_s":100,"errors":0}}`,
		`{"round":1,"target":"gw","scenario":"pipe100","exit":0,"result":{"msgs_per_s":40,"errors":0}}`,
		`{"round":2,"target":"direct-wss","scenario":"pipe100","exit":0,"result":{"msgs_per_s":300,"errors":0}}`,
		`{"round":2,"target":"gw","scenario":"pipe100","exit":1,"result":{"msgs_per_s":60,"errors":2}}`,
		`{"round":3,"target":"direct-wss","scenario":"pipe100","exit":0,"result":{"msgs_per_s":200,"errors":0}}`,
		`{"round":3,"target":"gw","scenario":"pipe100","exit":1,"result":null}`,
		`{"round":1,"target":"direct-wss","scenario":"idle2000","exit":0,"result":{"idle":{"kib_per_conn":10}}}`,
		`{"round":1,"target":"gw","scenario":"idle2000","exit":0,"result":{"idle":{"kib_per_conn":25}}}`,
	}, "\n")
	var out bytes.Buffer
	if err := aggregate(strings.NewReader(in), &out, "direct-wss"); err != nil {
		t.Fatal(err)
	}
	want := `| metric (median of runs; ×direct-wss) | direct-wss | gw |
|---|---:|---:|
| pipe 100 B window 64, msgs/s (↑) | 200 | 50 (×0.25) !2 |
| idle 2000 conns, KiB/conn (↓) | 10.0 | 25.0 (×2.50) |

! = at least one run of that cell failed or counted errors (see the logs).
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got, ok := median(&cell{values: tt.in}); !ok || got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if _, ok := median(nil); ok {
		t.Error("median(nil) ok")
	}
}
