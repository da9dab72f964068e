// Package cliusage gives the examples one -h format: a sentence saying
// what the program does, an example command line, then the flags; and one
// exit code rule: -h exits 0.
package cliusage

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// Set makes fs's usage print summary, example and the flags to fs's output.
func Set(fs *flag.FlagSet, summary, example string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nExample:\n  %s\n\nFlags:\n", summary, example)
		fs.PrintDefaults()
	}
}

// Exit ends the program for a run error: 0 for nil and flag.ErrHelp (the
// usage was printed), else 1 after printing "name: err" to stderr.
// Errors wrapping flag parse errors were already printed by the flag set.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}
