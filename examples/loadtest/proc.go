package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// raiseFileLimit lifts RLIMIT_NOFILE to its hard limit, so thousands of
// connections fit.
func raiseFileLimit(stderr io.Writer) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(stderr, "loadtest: raising RLIMIT_NOFILE:", err)
		}
	}
}

// resolvePIDs returns the PIDs named by -pid, -pidfile and -pgrep, with
// all their descendants (nginx and haproxy workers), sorted.
func resolvePIDs(c *config) ([]int, error) {
	var roots []int
	for f := range strings.SplitSeq(c.pids, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("-pid %q: %w", f, err)
		}
		roots = append(roots, p)
	}
	if c.pidfile != "" {
		b, err := os.ReadFile(c.pidfile)
		if err != nil {
			return nil, err
		}
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("-pidfile %s: %w", c.pidfile, err)
		}
		roots = append(roots, p)
	}
	procs, err := listProcs()
	if err != nil {
		return nil, err
	}
	if c.pgrep != "" {
		matched := 0
		for _, p := range procs {
			if p.pid != os.Getpid() && strings.Contains(p.cmdline, c.pgrep) {
				roots = append(roots, p.pid)
				matched++
			}
		}
		if matched == 0 {
			return nil, fmt.Errorf("-pgrep %q matches no process", c.pgrep)
		}
	}
	for _, p := range roots {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err != nil {
			return nil, fmt.Errorf("pid %d: %w", p, err)
		}
	}
	return withDescendants(roots, procs), nil
}

type proc struct {
	pid, ppid int
	cmdline   string
}

// listProcs reads every process's parent and command line from /proc.
func listProcs() ([]proc, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(d + "/cmdline")
		out = append(out, proc{pid, ppid, string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))})
	}
	return out, nil
}

func withDescendants(roots []int, procs []proc) []int {
	set := map[int]bool{}
	for _, r := range roots {
		set[r] = true
	}
	for grew := true; grew; {
		grew = false
		for _, p := range procs {
			if set[p.ppid] && !set[p.pid] {
				set[p.pid], grew = true, true
			}
		}
	}
	out := make([]int, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// sumRSS adds up VmRSS (KiB) of pids.
func sumRSS(pids []int) (int64, error) {
	var total int64
	for _, p := range pids {
		kib, err := rss(p)
		if err != nil {
			return 0, err
		}
		total += kib
	}
	return total, nil
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS in /proc/%d/status", pid, pid)
}
