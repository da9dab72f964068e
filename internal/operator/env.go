package operator

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvName returns the environment variable that sets the flag name:
// "max-conns" -> "WSSGATE_MAX_CONNS".
func EnvName(flagName string) string {
	return "WSSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse builds the flag set, parses args, then fills the flags not given
// on the command line from the environment and then from the -config
// file. getenv is os.Getenv outside tests.
func (p *Program) parse(args []string, getenv func(string) string) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(p.name(), flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are logged, -h printed by the caller
	fs.Usage = func() {}
	c := &Config{set: map[string]bool{}}
	c.register(fs)
	if p.Flags != nil {
		p.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected arguments %q (flags go before them, as -name value)", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || c.set[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := lookupEnv(getenv, EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", EnvName(f.Name), v, e)
			}
			c.set[f.Name] = true
		}
	})
	if err != nil {
		return nil, fs, err
	}
	if c.ConfigFile == "" {
		if v, ok := lookupEnv(getenv, EnvName("config")); ok {
			c.ConfigFile = v
		}
	}
	if c.ConfigFile != "" {
		if err := c.applyFile(fs); err != nil {
			return nil, fs, err
		}
	}
	return c, fs, nil
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// applyFile sets the flags not yet set from c.ConfigFile: lines of
// WSSGATE_NAME=value (the systemd EnvironmentFile form; # comments, blank
// lines and optional quotes allowed).
func (c *Config) applyFile(fs *flag.FlagSet) error {
	b, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	byEnv := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[EnvName(f.Name)] = f.Name })
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(strings.TrimPrefix(key, "export ")), strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		name, known := byEnv[key]
		switch {
		case !ok:
			return fmt.Errorf("-config %s:%d: want NAME=value, got %q", c.ConfigFile, n, line)
		case !known || name == "config":
			return fmt.Errorf("-config %s:%d: unknown setting %s (run with -h for the list)", c.ConfigFile, n, key)
		case c.set[name]:
			continue // the command line and the environment win
		}
		if err := fs.Set(name, val); err != nil {
			return fmt.Errorf("-config %s:%d: %s=%q: %v", c.ConfigFile, n, key, val, err)
		}
	}
	return sc.Err()
}

// usage writes the -h text: what the program does, an example, and every
// flag with its environment variable.
func (p *Program) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nExample:\n  %s\n\nFlags (each also read from the environment variable shown, or a -config file line):\n", p.summary(), p.example())
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "   [%s]\n    \t%s", EnvName(f.Name), strings.ReplaceAll(help, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
