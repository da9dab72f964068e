package redisstore

import (
	"fmt"
	"io"
	"slices"
)

// WritePrometheus writes the store's health in the Prometheus text
// format: wssgate_redis_up (1 or 0), wssgate_redis_errors_total and
// wssgate_redis_fallbacks_total{store="name"}, the decisions each
// limiter made without Redis. Append it to the gateway's /metrics.
func (s *Store) WritePrometheus(w io.Writer) error {
	st := s.Status()
	up := 0
	if st.Up {
		up = 1
	}
	_, err := fmt.Fprintf(w, "# HELP wssgate_redis_up Whether Redis answered the last call.\n# TYPE wssgate_redis_up gauge\nwssgate_redis_up %d\n"+
		"# HELP wssgate_redis_errors_total Failed Redis calls.\n# TYPE wssgate_redis_errors_total counter\nwssgate_redis_errors_total %d\n"+
		"# HELP wssgate_redis_fallbacks_total Decisions made without Redis, by store.\n# TYPE wssgate_redis_fallbacks_total counter\n",
		up, st.Errors)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(st.Fallbacks))
	for n := range st.Fallbacks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if _, err := fmt.Fprintf(w, "wssgate_redis_fallbacks_total{store=%q} %d\n", n, st.Fallbacks[n]); err != nil {
			return err
		}
	}
	return nil
}
