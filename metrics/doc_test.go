package metrics

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/wssproxy"
)

// TestDocumentedSeries keeps the package doc's list of series (the stable
// API) and the exposition in step: every family Counters writes is
// documented with its type and label names, and every documented one is
// written.
func TestDocumentedSeries(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^//\t(\w+)(?:\{([\w,]*)\})?\s+(gauge|counter|histogram)\s`)
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(src), -1) {
		labels := strings.Split(m[2], ",")
		slices.Sort(labels)
		documented["wssgate_"+m[1]] = m[3] + " {" + strings.Join(labels, ",") + "}"
	}
	if len(documented) == 0 {
		t.Fatal("no series found in doc.go")
	}

	c := NewCounters()
	countersScenario(c)
	c.nodeState("node:9944", wssproxy.NodeStatus{Healthy: true, BestBlock: 2, SecondsSinceHead: 1}) // the node gauges
	var buf strings.Builder
	if err := c.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	p := parsePrometheus(t, buf.String())
	written := map[string]string{}
	for name, typ := range p.types {
		written[name] = typ + " {" + strings.Join(labelNames(p, name), ",") + "}"
	}
	if diff := cmp.Diff(documented, written); diff != "" {
		t.Errorf("series (-doc.go +written):\n%s", diff)
	}
}

// labelNames returns the sorted label names of family name's samples, le
// aside.
func labelNames(p *promText, name string) []string {
	names := map[string]bool{}
	for key := range p.samples {
		n, labels, ok := parsePromSampleKey(key)
		if !ok || strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count") != name {
			continue
		}
		for l := range labels {
			if l != "le" {
				names[l] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(names))
}
