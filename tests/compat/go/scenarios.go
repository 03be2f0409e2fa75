package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
)

// describeScenario: a run whose running activity is paused, then the run completes; both describe calls.
func describeScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) {
		w.RegisterWorkflow(ActivityUntilSignal)
		w.RegisterActivity(BlockingActivity)
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, ActivityUntilSignal)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "the activity to start", func() (bool, error) {
		d, err := e.client.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return false, err
		}
		acts := d.GetPendingActivities()
		return len(acts) == 1 && acts[0].GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED, nil
	}); err != nil {
		return nil, err
	}
	_, err = e.client.WorkflowService().PauseActivity(ctx, &workflowservice.PauseActivityRequest{
		Namespace: "default",
		Execution: &commonpb.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()},
		Activity:  &workflowservice.PauseActivityRequest_Type{Type: "BlockingActivity"},
		Identity:  "gocompat",
		Reason:    "compat test",
	})
	if err != nil {
		return nil, fmt.Errorf("PauseActivity: %w", err)
	}
	if err := e.client.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "finish", nil); err != nil {
		return nil, err
	}
	var result string
	if err := run.Get(ctx, &result); err != nil {
		return nil, err
	}
	desc, err := e.client.DescribeWorkflow(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, fmt.Errorf("DescribeWorkflow: %w", err)
	}
	raw, err := e.client.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, err
	}
	pending := []map[string]any{}
	for _, a := range raw.GetPendingActivities() {
		pending = append(pending, map[string]any{
			"activity_type": a.GetActivityType().GetName(),
			"state":         a.GetState().String(),
			"paused":        a.GetPaused(),
			"attempt":       a.GetAttempt(),
		})
	}
	info := raw.GetWorkflowExecutionInfo()
	return map[string]any{
		"result":                   result,
		"status":                   desc.Status.String(),
		"workflow_type":            desc.WorkflowType,
		"task_queue":               desc.TaskQueueName == e.taskQueue,
		"memo_fields":              len(desc.Memo.GetFields()),
		"typed_search_attributes":  searchAttributeNames(desc.TypedSearchAttributes),
		"history_length":           desc.HistoryLength,
		"close_time_set":           desc.WorkflowCloseTime != nil,
		"raw_memo_present":         info.GetMemo() != nil,
		"raw_search_attrs_present": info.GetSearchAttributes() != nil,
		"pending_activities":       pending,
	}, nil
}

// updateDelayedStartScenario: an update to a run started with a start delay must start its first task at once.
func updateDelayedStartScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) { w.RegisterWorkflow(CounterWorkflow) })
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: e.prefix, TaskQueue: e.taskQueue, StartDelay: time.Hour,
	}, CounterWorkflow)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	handle, err := e.client.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{
		WorkflowID: run.GetID(), UpdateName: "add", Args: []interface{}{5},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	out := map[string]any{}
	if err != nil {
		out["update_error"] = err.Error()
	} else {
		var n int
		out["update_error"] = errText(handle.Get(uctx, &n))
		out["update_result"] = n
	}
	out["update_within_10s"] = time.Since(began) < 10*time.Second
	if err := e.client.SignalWorkflow(ctx, run.GetID(), "", "finish", nil); err != nil {
		return nil, err
	}
	var result int
	out["workflow_error"] = errText(run.Get(ctx, &result))
	out["workflow_result"] = result
	h, err := e.history(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, err
	}
	out["events"] = eventTypes(h)
	return out, nil
}

// queriesScenario: queries while the run is cached on the worker (sticky), after signals, and after it closed.
func queriesScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) { w.RegisterWorkflow(CounterWorkflow) })
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, CounterWorkflow)
	if err != nil {
		return nil, err
	}
	answers := []int{}
	slow := 0
	query := func() error {
		began := time.Now()
		v, err := e.client.QueryWorkflow(ctx, run.GetID(), "", "count")
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		if time.Since(began) > 2*time.Second {
			slow++
		}
		var n int
		if err := v.Get(&n); err != nil {
			return err
		}
		answers = append(answers, n)
		return nil
	}
	for round := 1; round <= 4; round++ {
		for i := 0; i < 3; i++ {
			if err := query(); err != nil {
				return nil, err
			}
		}
		if err := e.client.SignalWorkflow(ctx, run.GetID(), "", "add", round); err != nil {
			return nil, err
		}
		// The signal's task completes before the next query on both servers only if we wait for it.
		if err := waitFor(ctx, "the signal to be processed", func() (bool, error) {
			d, err := e.client.DescribeWorkflowExecution(ctx, run.GetID(), "")
			if err != nil {
				return false, err
			}
			return d.GetPendingWorkflowTask() == nil, nil
		}); err != nil {
			return nil, err
		}
	}
	if err := e.client.SignalWorkflow(ctx, run.GetID(), "", "finish", nil); err != nil {
		return nil, err
	}
	var result int
	if err := run.Get(ctx, &result); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := query(); err != nil {
			return nil, err
		}
	}
	return map[string]any{"answers": answers, "slow_queries": slow, "result": result}, nil
}

// cancelScenario runs one workflow to its end on the scenario's worker, signalling "finish" once ready() holds.
func cancelScenario(ctx context.Context, e *env, wf interface{}, ready func(client.WorkflowRun) (bool, error)) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) {
		w.RegisterWorkflow(wf)
		w.RegisterActivity(BlockingActivity)
		w.RegisterActivity(FailingActivity)
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, wf)
	if err != nil {
		return nil, err
	}
	if ready != nil {
		if err := waitFor(ctx, "the run to be ready", func() (bool, error) { return ready(run) }); err != nil {
			return nil, err
		}
		if err := e.client.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "finish", nil); err != nil {
			return nil, err
		}
	}
	var result string
	werr := run.Get(ctx, &result)
	h, err := e.history(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"result":         result,
		"workflow_error": errText(werr),
		"events":         eventTypes(h),
		"replay_error":   replay(h, func(r worker.WorkflowReplayer) { r.RegisterWorkflow(wf) }),
	}, nil
}

func cancelSameTaskScenario(ctx context.Context, e *env) (map[string]any, error) {
	return cancelScenario(ctx, e, CancelSameTaskWorkflow, nil)
}

// cancelRetryingScenario: the activity's first attempt failed and it waits for its retry when the run
// cancels it and completes in the same task.
func cancelRetryingScenario(ctx context.Context, e *env) (map[string]any, error) {
	return cancelScenario(ctx, e, CancelRetryingWorkflow, func(run client.WorkflowRun) (bool, error) {
		d, err := e.client.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return false, err
		}
		acts := d.GetPendingActivities()
		return len(acts) == 1 && acts[0].GetAttempt() == 2 && acts[0].GetLastFailure() != nil, nil
	})
}

// updateLongPollScenario: polling an update that completes much later, with a 5 s deadline on the call.
func updateLongPollScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) { w.RegisterWorkflow(SlowUpdateWorkflow) })
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, SlowUpdateWorkflow)
	if err != nil {
		return nil, err
	}
	handle, err := e.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: run.GetID(), UpdateID: "slow-1", UpdateName: "slow", WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	began := time.Now()
	resp, perr := e.client.WorkflowService().PollWorkflowExecutionUpdate(pctx, &workflowservice.PollWorkflowExecutionUpdateRequest{
		Namespace: "default",
		UpdateRef: &updatepb.UpdateRef{
			WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()},
			UpdateId:          handle.UpdateID(),
		},
		Identity:   "gocompat",
		WaitPolicy: &updatepb.WaitPolicy{LifecycleStage: enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED},
	})
	elapsed := time.Since(began)
	out := map[string]any{
		"poll_elapsed_ms":  elapsed.Milliseconds(),
		"poll_error_code":  "",
		"poll_stage":       resp.GetStage().String(),
		"poll_has_outcome": resp.GetOutcome() != nil,
	}
	if perr != nil {
		var dl *serviceerror.DeadlineExceeded
		if errors.As(perr, &dl) || errors.Is(perr, context.DeadlineExceeded) {
			out["poll_error_code"] = "DeadlineExceeded"
		} else {
			out["poll_error_code"] = perr.Error()
		}
	}
	// Terminated, not finished: a run finishing with the update's handler still running would make the SDK
	// warn (TMPRL1102), or not, depending on whether the worker still runs then.
	if err := e.client.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "compat test done"); err != nil {
		return nil, err
	}
	return out, nil
}

// resetReapplyScenario: two updates and a signal after the first task; reset to that task with ALL_ELIGIBLE.
func resetReapplyScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) { w.RegisterWorkflow(CounterWorkflow) })
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, CounterWorkflow)
	if err != nil {
		return nil, err
	}
	for i, n := range []int{1, 10} {
		h, err := e.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: run.GetID(), UpdateID: fmt.Sprintf("add-%d", i), UpdateName: "add", Args: []interface{}{n},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err != nil {
			return nil, err
		}
		if err := h.Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	if err := e.client.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "add", 100); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "the signal to be processed", func() (bool, error) {
		v, err := e.client.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), "count")
		if err != nil {
			return false, err
		}
		var n int
		return v.Get(&n) == nil && n == 111, nil
	}); err != nil {
		return nil, err
	}
	before, err := e.history(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, err
	}
	var firstTask int64
	for _, ev := range before.Events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			firstTask = ev.GetEventId()
			break
		}
	}
	reset, err := e.client.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace:                 "default",
		WorkflowExecution:         &commonpb.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()},
		Reason:                    "compat test",
		WorkflowTaskFinishEventId: firstTask,
		RequestId:                 e.prefix + "-reset",
		ResetReapplyType:          enumspb.RESET_REAPPLY_TYPE_ALL_ELIGIBLE,
	})
	if err != nil {
		return nil, fmt.Errorf("reset: %w", err)
	}
	newRun := reset.GetRunId()
	if err := waitFor(ctx, "the reset run to apply what was reapplied", func() (bool, error) {
		d, err := e.client.DescribeWorkflowExecution(ctx, run.GetID(), newRun)
		if err != nil {
			return false, err
		}
		return d.GetPendingWorkflowTask() == nil, nil
	}); err != nil {
		return nil, err
	}
	if err := e.client.SignalWorkflow(ctx, run.GetID(), newRun, "finish", nil); err != nil {
		return nil, err
	}
	var result int
	werr := e.client.GetWorkflow(ctx, run.GetID(), newRun).Get(ctx, &result)
	after, err := e.history(ctx, run.GetID(), newRun)
	if err != nil {
		return nil, err
	}
	admitted := 0
	for _, ev := range after.Events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED {
			admitted++
		}
	}
	return map[string]any{
		"reset_run_result":  result,
		"workflow_error":    errText(werr),
		"updates_reapplied": admitted,
		"events":            eventTypes(after),
	}, nil
}

// scheduleScenario: a schedule from a cron string, an interval and a calendar, described as the SDK sees it;
// then its search attributes are emptied and it is described again.
func scheduleScenario(ctx context.Context, e *env) (map[string]any, error) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	handle, err := e.client.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: e.prefix,
		Spec: client.ScheduleSpec{
			CronExpressions: []string{"30 12 * * MON-FRI"},
			Intervals:       []client.ScheduleIntervalSpec{{Every: time.Hour, Offset: time.Minute}},
			Calendars: []client.ScheduleCalendarSpec{{
				Hour:      []client.ScheduleRange{{Start: 3}},
				DayOfWeek: []client.ScheduleRange{{Start: 1, End: 5}},
			}},
			StartAt: start,
		},
		Action: &client.ScheduleWorkflowAction{ID: e.prefix + "-wf", Workflow: "CounterWorkflow", TaskQueue: e.taskQueue},
		Paused: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create schedule: %w", err)
	}
	defer func() { _ = handle.Delete(context.Background()) }()
	desc, err := handle.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe schedule: %w", err)
	}
	out := map[string]any{
		"spec":                    desc.Schedule.Spec,
		"paused":                  desc.Schedule.State.Paused,
		"search_attributes_nil":   desc.SearchAttributes == nil,
		"search_attribute_fields": len(desc.SearchAttributes.GetIndexedFields()),
	}
	err = handle.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		empty := temporal.NewSearchAttributes()
		return &client.ScheduleUpdate{Schedule: &in.Description.Schedule, TypedSearchAttributes: &empty}, nil
	}})
	if err != nil {
		return nil, fmt.Errorf("update schedule: %w", err)
	}
	desc, err = handle.Describe(ctx)
	if err != nil {
		return nil, err
	}
	out["updated_search_attributes_nil"] = desc.SearchAttributes == nil
	out["updated_search_attribute_fields"] = len(desc.SearchAttributes.GetIndexedFields())
	out["updated_spec"] = desc.Schedule.Spec
	return out, nil
}

// durationsScenario: sub-second timeouts and retry intervals, as recorded in the history and as enforced.
func durationsScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) {
		w.RegisterWorkflow(DurationsWorkflow)
		w.RegisterActivity(SleepyActivity)
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, DurationsWorkflow)
	if err != nil {
		return nil, err
	}
	var result string
	werr := run.Get(ctx, &result)
	h, err := e.history(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"result":         result,
		"workflow_error": errText(werr),
		"events":         eventTypes(h),
	}
	var startedAt time.Time
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			rp := a.GetRetryPolicy()
			out["start_to_close_ns"] = a.GetStartToCloseTimeout().AsDuration().Nanoseconds()
			out["retry_initial_interval_ns"] = rp.GetInitialInterval().AsDuration().Nanoseconds()
			out["retry_maximum_interval_ns"] = rp.GetMaximumInterval().AsDuration().Nanoseconds()
			out["retry_maximum_attempts"] = rp.GetMaximumAttempts()
		}
		if ev.GetActivityTaskStartedEventAttributes() != nil {
			startedAt = ev.GetEventTime().AsTime()
		}
		if a := ev.GetActivityTaskTimedOutEventAttributes(); a != nil {
			// How long after its start the last attempt was timed out (the server's timer latency).
			out["timed_out_after_ms"] = ev.GetEventTime().AsTime().Sub(startedAt).Milliseconds()
			out["timeout_type"] = a.GetFailure().GetTimeoutFailureInfo().GetTimeoutType().String()
			out["timeout_retry_state"] = a.GetRetryState().String()
		}
	}
	return out, nil
}

// searchAttributeNames are the names of a run's search attributes, sorted.
func searchAttributeNames(sa temporal.SearchAttributes) []string {
	names := []string{}
	for key := range sa.GetUntypedValues() {
		names = append(names, key.GetName())
	}
	sort.Strings(names)
	return names
}

// signalDuringCompletionScenario: a signal arrives while the task completing the run is in flight; the
// completion is refused (UNHANDLED_COMMAND) and the run completes in the next task, seeing the signal.
func signalDuringCompletionScenario(ctx context.Context, e *env) (map[string]any, error) {
	stop, err := e.startWorker(func(w worker.Worker) { w.RegisterWorkflow(SignalDuringCompletionWorkflow) })
	if err != nil {
		return nil, err
	}
	defer stop()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: e.prefix, TaskQueue: e.taskQueue}, SignalDuringCompletionWorkflow)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, "the first task to complete", func() (bool, error) {
		d, err := e.client.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return false, err
		}
		return d.GetPendingWorkflowTask() == nil, nil
	}); err != nil {
		return nil, err
	}
	if err := e.client.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "go", nil); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	if err := e.client.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "late", nil); err != nil {
		return nil, err
	}
	var late int
	werr := run.Get(ctx, &late)
	h, err := e.history(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, err
	}
	return map[string]any{"late_signals_seen": late, "workflow_error": errText(werr), "events": eventTypes(h)}, nil
}
