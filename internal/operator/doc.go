// Package operator is the wssgate operator binary as a library: the flags
// and their environment variables, the wiring of wssproxy, certs and
// ratelimit, the listeners, the signals (SIGINT/SIGTERM drain, SIGHUP
// reload), the startup banner and the pages (a landing page on the public
// port, a live dashboard on the admin port).
//
// examples/basic is a thin main over [Program.Main]. A binary in another
// module (for example one with Redis-shared limiters) reuses the whole
// operator and adds what it needs through the optional hooks of [Program]:
//
//	p := &operator.Program{
//		Name: "wssgate-redis",
//		Flags: func(fs *flag.FlagSet) { fs.StringVar(&addr, "redis", "", "Redis address") },
//		Limiters: func(c *operator.Config) (*operator.Limiters, error) { ... },
//	}
//	os.Exit(p.Main(context.Background(), os.Args[1:]))
//
// Every flag, extra ones included, can also be set through an environment
// variable (WSSGATE_ and the flag name in upper case with _ for -) or a
// line of the -config file; a flag on the command line wins over the
// environment, which wins over the file. SIGHUP re-reads the file and
// applies the limits, the upstream list, the method policy and the
// certificate files to new connections without touching open ones.
package operator
