package main

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// BlockingActivity runs until its context ends (cancelled, timed out, or the worker stops).
func BlockingActivity(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// FailingActivity fails every attempt (the retry policy decides when the next one comes).
func FailingActivity(ctx context.Context) error {
	return errors.New("failing on purpose, attempt " + itoa(int(activity.GetInfo(ctx).Attempt)))
}

// SleepyActivity outlives a short start-to-close timeout.
func SleepyActivity(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
		return nil
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

// ActivityUntilSignal starts BlockingActivity, then completes when signalled "finish" (not waiting for it).
func ActivityUntilSignal(ctx workflow.Context) (string, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	workflow.ExecuteActivity(actx, BlockingActivity)
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return "finished", nil
}

// CounterWorkflow adds the updates' and signals' arguments to a counter, answers the query "count", and
// returns the counter when signalled "finish".
func CounterWorkflow(ctx workflow.Context) (int, error) {
	count := 0
	if err := workflow.SetQueryHandler(ctx, "count", func() (int, error) { return count, nil }); err != nil {
		return 0, err
	}
	if err := workflow.SetUpdateHandler(ctx, "add", func(ctx workflow.Context, n int) (int, error) {
		count += n
		return count, nil
	}); err != nil {
		return 0, err
	}
	add := workflow.GetSignalChannel(ctx, "add")
	finish := workflow.GetSignalChannel(ctx, "finish")
	done := false
	for !done {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(add, func(c workflow.ReceiveChannel, _ bool) {
			var n int
			c.Receive(ctx, &n)
			count += n
		})
		sel.AddReceive(finish, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			done = true
		})
		sel.Select(ctx)
	}
	// Updates accepted in the finishing task complete before the run does.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return 0, err
	}
	return count, nil
}

// SlowUpdateWorkflow's update "slow" is accepted at once and completes after 20 s of workflow time.
func SlowUpdateWorkflow(ctx workflow.Context) (string, error) {
	if err := workflow.SetUpdateHandler(ctx, "slow", func(ctx workflow.Context) (string, error) {
		if err := workflow.Sleep(ctx, 20*time.Second); err != nil {
			return "", err
		}
		return "slow done", nil
	}); err != nil {
		return "", err
	}
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return "finished", nil
}

// CancelSameTaskWorkflow schedules an activity and cancels it in the same workflow task, then sleeps
// (so the task's later commands show where the server writes the cancellation) and returns.
func CancelSameTaskWorkflow(ctx workflow.Context) (string, error) {
	actx, cancel := workflow.WithCancel(ctx)
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	fut := workflow.ExecuteActivity(actx, BlockingActivity)
	cancel()
	if err := workflow.Sleep(ctx, time.Second); err != nil {
		return "", err
	}
	err := fut.Get(ctx, nil)
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "activity cancelled", nil
	}
	return "activity: " + errText(err), nil
}

// CancelRetryingWorkflow starts an activity that fails and waits an hour for its retry; signalled "finish",
// it cancels the activity and completes in that same workflow task.
func CancelRetryingWorkflow(ctx workflow.Context) (string, error) {
	actx, cancel := workflow.WithCancel(ctx)
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Hour, BackoffCoefficient: 2},
	})
	workflow.ExecuteActivity(actx, FailingActivity)
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	cancel()
	return "finished", nil
}

// DurationsWorkflow runs SleepyActivity with a 200 ms start-to-close timeout and sub-second retry intervals,
// two attempts: each attempt times out.
func DurationsWorkflow(ctx workflow.Context) (string, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 200 * time.Millisecond,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Nanosecond,
			MaximumInterval:    100 * time.Nanosecond,
			BackoffCoefficient: 2,
			MaximumAttempts:    2,
		},
	})
	err := workflow.ExecuteActivity(actx, SleepyActivity).Get(ctx, nil)
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out: " + timeout.TimeoutType().String(), nil
	}
	return "activity: " + errText(err), nil
}

// SignalDuringCompletionWorkflow waits for "go", then works 700 ms inside the workflow task (so that a
// signal "late" arrives while the task that completes the run is in flight) and returns how many "late"
// signals it saw.
func SignalDuringCompletionWorkflow(ctx workflow.Context) (int, error) {
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	time.Sleep(700 * time.Millisecond) // deliberately blocking: the task stays in flight
	late := 0
	for workflow.GetSignalChannel(ctx, "late").ReceiveAsync(nil) {
		late++
	}
	return late, nil
}
