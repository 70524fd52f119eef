package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Memory is what /proc/<pid>/status says of a process's resident memory.
// Both are 0 where /proc is missing (a report then says so).
type Memory struct {
	// HWM (VmHWM) is the peak resident set size since the process started:
	// a high-water mark, never lowered.
	HWM int64
	// RSS (VmRSS) is the resident set size when it was read.
	RSS int64
}

// ReadMemory reads pid's VmHWM and VmRSS.
func ReadMemory(pid int) Memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}
	}
	return parseStatus(string(b))
}

// parseStatus picks VmHWM and VmRSS out of a /proc/<pid>/status text.
func parseStatus(s string) Memory {
	var m Memory
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmHWM" {
			m.HWM = n * 1024
		} else {
			m.RSS = n * 1024
		}
	}
	return m
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ),
// which Linux fixes at 100 per second on every architecture Go supports.
const clockTick = 10 * time.Millisecond

// ProcessCPU is the CPU time (user + system) pid has used so far, 0 when
// unknown.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime + stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) may hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStatCPU(s string) time.Duration {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+st) * clockTick
}

// MachineBusy is the CPU time all processes of the machine have used so
// far (every state of /proc/stat's cpu line but idle and iowait), 0 when
// unknown. Over a window, it shows how much of the machine others took.
func MachineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseProcStat(string(b))
}

// parseProcStat sums the busy ticks of the aggregate "cpu" line of a
// /proc/stat text: user nice system idle iowait irq softirq steal (guest
// time is already inside user and nice).
func parseProcStat(s string) time.Duration {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * clockTick
}

// IO is what /proc/<pid>/io counts of a process's I/O system calls so far:
// the read and write calls (syscr, syscw) and the bytes handed to write
// calls (wchar: files and sockets alike, whether or not they reach a disk).
// Unlike CPU time, these move with the code and not with the machine's
// speed: SQLite's WAL frames are two write calls each.
type IO struct {
	ReadCalls, WriteCalls, WriteBytes int64
}

// Sub is the I/O between an earlier reading and this one.
func (io IO) Sub(earlier IO) IO {
	return IO{io.ReadCalls - earlier.ReadCalls, io.WriteCalls - earlier.WriteCalls, io.WriteBytes - earlier.WriteBytes}
}

// ProcessIO is pid's I/O so far, and false when unknown (not Linux, or
// not readable).
func ProcessIO(pid int) (IO, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return IO{}, false
	}
	return parseIO(string(b))
}

// parseIO reads syscr, syscw and wchar out of a /proc/<pid>/io text.
func parseIO(s string) (IO, bool) {
	var io IO
	found := 0
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "syscr":
			io.ReadCalls, found = n, found+1
		case "syscw":
			io.WriteCalls, found = n, found+1
		case "wchar":
			io.WriteBytes, found = n, found+1
		}
	}
	return io, found == 3
}
