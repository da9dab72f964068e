package wssproxy

import (
	"errors"
	"testing"
)

func TestSchedulerFairByKey(t *testing.T) {
	var s scheduler
	s.init(1000, 100)
	a, b, c := new(int), new(int), new(int)
	for range 100 {
		if err := s.push(&job{key: "a", owner: a, method: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.push(&job{key: "a", owner: a}); !errors.Is(err, errClientQueueFull) {
		t.Errorf("101st call of one key: %v, want errClientQueueFull", err)
	}
	s.push(&job{key: "b", owner: b, method: "b"})
	s.push(&job{key: "c", owner: c, method: "c"})
	s.push(&job{method: "gateway"}) // the gateway's own: first
	var order []string
	for j := s.pop(); j != nil; j = s.pop() {
		order = append(order, j.method)
	}
	if len(order) != 103 {
		t.Fatalf("popped %d, want 103", len(order))
	}
	if order[0] != "gateway" {
		t.Errorf("first %q, want the gateway's own call", order[0])
	}
	for _, k := range []string{"b", "c"} {
		i := indexOf(order, k)
		if i < 0 || i > 3 {
			t.Errorf("key %s's only call went out at %d behind %d calls of key a", k, i, i-1)
		}
	}
	if s.total != 0 || len(s.ring) != 0 || len(s.queues) != 0 {
		t.Errorf("scheduler not empty: total %d ring %v", s.total, s.ring)
	}
}

func TestSchedulerBoundAndDrop(t *testing.T) {
	var s scheduler
	s.init(3, 3)
	a, b := new(int), new(int)
	s.push(&job{key: "k", owner: a})
	s.push(&job{key: "k", owner: b})
	s.push(&job{key: "j", owner: b})
	if err := s.push(&job{key: "m", owner: b}); !errors.Is(err, errQueueFull) {
		t.Errorf("over the total: %v, want errQueueFull", err)
	}
	if got := len(s.drop("k", a)); got != 1 {
		t.Errorf("dropped %d, want 1", got)
	}
	if got := len(s.drop("k", b)) + len(s.drop("j", b)); got != 2 || s.total != 0 || len(s.ring) != 0 {
		t.Errorf("dropped %d, total %d, ring %v", got, s.total, s.ring)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
