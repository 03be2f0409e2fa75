// Command gocompat runs one scenario of the Go SDK (go.temporal.io/sdk) against a Temporal server and prints
// what a Go application would see as one JSON object on stdout: results, errors, history event types, timings.
// tests/compat/test_go_sdk.py runs each scenario against Hourglass and the reference and compares the outputs.
//
// Usage: gocompat -address 127.0.0.1:7233 -scenario NAME
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// scenario runs against a connected client on its own task queue and returns what it observed.
type scenario func(ctx context.Context, env *env) (map[string]any, error)

var scenarios = map[string]scenario{
	"describe":                 describeScenario,
	"update-delayed-start":     updateDelayedStartScenario,
	"queries":                  queriesScenario,
	"cancel-same-task":         cancelSameTaskScenario,
	"cancel-retrying":          cancelRetryingScenario,
	"update-long-poll":         updateLongPollScenario,
	"reset-reapply":            resetReapplyScenario,
	"schedule":                 scheduleScenario,
	"durations":                durationsScenario,
	"signal-during-completion": signalDuringCompletionScenario,
}

// env is what every scenario shares: the client, a task queue of its own, and the SDK's log lines.
type env struct {
	client    client.Client
	taskQueue string
	prefix    string
	logs      *captureLogger
}

func main() {
	address := flag.String("address", "127.0.0.1:7233", "the frontend's host:port")
	namespace := flag.String("namespace", "default", "the namespace")
	name := flag.String("scenario", "", "the scenario to run: "+strings.Join(scenarioNames(), ", "))
	timeout := flag.Duration("timeout", 60*time.Second, "the whole scenario's deadline")
	flag.Parse()
	run, ok := scenarios[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q (one of: %s)\n", *name, strings.Join(scenarioNames(), ", "))
		os.Exit(2)
	}
	logs := &captureLogger{}
	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace, Logger: logs})
	if err != nil {
		fmt.Fprintf(os.Stderr, "dial %s: %v\n", *address, err)
		os.Exit(1)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	e := &env{client: c, taskQueue: "go-" + *name + "-" + suffix, prefix: "go-" + *name + "-" + suffix, logs: logs}
	out, err := run(ctx, e)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scenario %s: %v\n", *name, err)
		os.Exit(1)
	}
	out["sdk_errors"] = logs.errors()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// captureLogger keeps the SDK's warnings and errors (e.g. "premature end of stream") for the output.
type captureLogger struct {
	mu    sync.Mutex
	lines []string
	quiet bool // keep nothing (the replayer's logger: its errors are returned)
}

func (l *captureLogger) add(level, msg string, kv []interface{}) {
	if l.quiet {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	line := level + " " + msg
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "Error" {
			line += fmt.Sprintf(" Error=%v", kv[i+1])
		}
	}
	l.lines = append(l.lines, line)
	fmt.Fprintln(os.Stderr, line, kv)
}

func (l *captureLogger) Debug(string, ...interface{})        {}
func (l *captureLogger) Info(string, ...interface{})         {}
func (l *captureLogger) Warn(msg string, kv ...interface{})  { l.add("WARN", msg, kv) }
func (l *captureLogger) Error(msg string, kv ...interface{}) { l.add("ERROR", msg, kv) }
func (l *captureLogger) With(...interface{}) log.Logger      { return l }
func (l *captureLogger) WithCallerSkip(int) log.Logger       { return l }
func (l *captureLogger) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []string{}
	for _, line := range l.lines {
		// Lines a healthy run logs on both servers (a worker stopping mid-poll) are not differences.
		// An activity failing on purpose is logged too.
		if strings.Contains(line, "context canceled") || strings.Contains(line, "Worker has been stopped") ||
			strings.Contains(line, "worker stopping") ||
			strings.HasPrefix(line, "ERROR Activity error.") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// startWorker runs a worker on the scenario's task queue with the given registrations until stop is called.
func (e *env) startWorker(register func(worker.Worker)) (stop func(), err error) {
	w := worker.New(e.client, e.taskQueue, worker.Options{})
	register(w)
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w.Stop, nil
}

// history reads a run's whole history.
func (e *env) history(ctx context.Context, workflowID, runID string) (*historypb.History, error) {
	it := e.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// eventTypes is a history as the names of its event types, in order (EVENT_TYPE_ prefix dropped).
func eventTypes(h *historypb.History) []string {
	out := make([]string, 0, len(h.Events))
	for _, ev := range h.Events {
		out = append(out, strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_"))
	}
	return out
}

// replay replays a history through the given workflow: "" when it replays, else the error's text.
func replay(h *historypb.History, register func(worker.WorkflowReplayer)) string {
	r := worker.NewWorkflowReplayer()
	register(r)
	if err := r.ReplayWorkflowHistory(&captureLogger{quiet: true}, h); err != nil {
		return err.Error()
	}
	return ""
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// waitFor polls cond every 100 ms until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
