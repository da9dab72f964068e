package operator_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/wssgate/wssgate/internal/operator"
	"github.com/wssgate/wssgate/ratelimit"
)

// A binary in another module reuses the whole operator and adds a flag
// and its own limiters (here an in-memory stand-in for Redis-shared ones).
func ExampleProgram() {
	var redisAddr string
	p := &operator.Program{
		Name:    "wssgate-redis",
		Summary: "wssgate-redis is wssgate with limits shared by every replica through Redis.",
		Example: "wssgate-redis -redis 127.0.0.1:6379 -upstream ws://127.0.0.1:9944",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&redisAddr, "redis", "", "Redis address for the shared limits")
		},
		Limiters: func(c *operator.Config) (*operator.Limiters, error) {
			return &operator.Limiters{Conn: &ratelimit.Conns{PerKey: c.MaxConnsPerClient}}, nil
		},
	}
	var help bytes.Buffer
	p.Run(context.Background(), []string{"-h"}, &help, io.Discard, nil)
	for _, line := range strings.Split(help.String(), "\n") {
		if strings.HasPrefix(line, "wssgate-redis") || strings.Contains(line, "-redis") {
			fmt.Println(strings.TrimSpace(line))
		}
	}
	// Output:
	// wssgate-redis is wssgate with limits shared by every replica through Redis.
	// wssgate-redis -redis 127.0.0.1:6379 -upstream ws://127.0.0.1:9944
	// -redis string   [WSSGATE_REDIS]
}
