package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// waitPoll is how often a waiting command polls its task.
const waitPoll = 500 * time.Millisecond

// taskID parses the one task id argument of a task subcommand.
func taskID(fs *flag.FlagSet, cmd string) (uint64, error) {
	if fs.NArg() != 1 {
		return 0, usagef("%s needs exactly one task id", cmd)
	}
	id, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("task id %q is not a positive number", fs.Arg(0))
	}
	return id, nil
}

func (o *ctlOpts) taskCancel(args []string) error {
	var reason string
	var noWait bool
	fs, err := o.subFlags("task cancel", args, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why (recorded as the task's error)")
		fs.BoolVar(&noWait, "no-wait", false, "return once the cancel is recorded, without waiting for the task to end")
		fs.DurationVar(&o.waitTimeout, "wait-timeout", o.waitTimeout, "give up waiting after this long (0: wait as long as it takes)")
	})
	if err != nil {
		return err
	}
	id, err := taskID(fs, "task cancel")
	if err != nil {
		return err
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.CancelTaskResponse, error) {
		return a.CancelTask(ctx, &pb.CancelTaskRequest{Id: id, Reason: reason})
	})
	if err != nil {
		return err
	}
	t := resp.Task
	if noWait || fsm.Terminal(t.State) {
		if o.json {
			return o.writeJSON(toTaskJSON(t))
		}
		if t.State == fsmpb.TaskState_TASK_STATE_CANCELLED {
			fmt.Fprintf(o.out, "cancelled task %d (%s of volume %d)\n", t.Id, fsm.TypeName(t.Type), t.VolumeId)
		} else {
			fmt.Fprintf(o.out, "task %d is %s on worker %s: asked it to stop and roll back; the task ends cancelled once it has (see ctl task show %d)\n",
				t.Id, fsm.StateName(t.State), dash(t.WorkerId), t.Id)
		}
		return nil
	}
	t, err = o.waitTask(id)
	if err != nil {
		return err
	}
	if err := o.printFinal(t); err != nil {
		return err
	}
	switch t.State {
	case fsmpb.TaskState_TASK_STATE_CANCELLED:
		return nil
	case fsmpb.TaskState_TASK_STATE_COMPLETED:
		return fmt.Errorf("task %d completed before it could be cancelled", id)
	}
	return fmt.Errorf("task %d %s before it could be cancelled: %s", id, fsm.StateName(t.State), t.LastError)
}

func (o *ctlOpts) taskRetry(args []string) error {
	var wait bool
	fs, err := o.subFlags("task retry", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&wait, "wait", false, "wait for the new task to end, showing its progress")
		fs.DurationVar(&o.waitTimeout, "wait-timeout", o.waitTimeout, "give up waiting after this long (0: wait as long as it takes)")
	})
	if err != nil {
		return err
	}
	id, err := taskID(fs, "task retry")
	if err != nil {
		return err
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.RetryTaskResponse, error) {
		return a.RetryTask(ctx, &pb.RetryTaskRequest{Id: id})
	})
	if err != nil {
		return err
	}
	if wait {
		return o.waitAndReport(resp.Task.Id)
	}
	t := resp.Task
	if o.json {
		j := toTaskJSON(t)
		j.Existing = &resp.Existing
		return o.writeJSON(j)
	}
	if resp.Existing {
		fmt.Fprintf(o.out, "volume %d already has an active %s task: returning task %d (%s) instead of retrying task %d\n", t.VolumeId, fsm.TypeName(t.Type), t.Id, fsm.StateName(t.State), id)
		return nil
	}
	fmt.Fprintf(o.out, "submitted task %d as a retry of task %d: %s of volume %d (%s)\n", t.Id, id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State))
	return nil
}

// waitAndReport waits for a task to end, prints it, and fails unless it
// completed.
func (o *ctlOpts) waitAndReport(id uint64) error {
	t, err := o.waitTask(id)
	if err != nil {
		return err
	}
	if err := o.printFinal(t); err != nil {
		return err
	}
	switch t.State {
	case fsmpb.TaskState_TASK_STATE_COMPLETED:
		return nil
	case fsmpb.TaskState_TASK_STATE_CANCELLED:
		return fmt.Errorf("task %d was cancelled: %s", id, t.LastError)
	}
	return fmt.Errorf("task %d failed: %s", id, t.LastError)
}

// printFinal prints the task a wait ended with: in full with --json, as
// one line otherwise.
func (o *ctlOpts) printFinal(t *fsmpb.Task) error {
	if o.json {
		return o.writeJSON(toTaskJSON(t))
	}
	fmt.Fprintf(o.out, "task %d %s: %s of volume %d", t.Id, fsm.StateName(t.State), fsm.TypeName(t.Type), t.VolumeId)
	if t.LastError != "" && t.State != fsmpb.TaskState_TASK_STATE_COMPLETED {
		fmt.Fprintf(o.out, " (%s)", t.LastError)
	}
	fmt.Fprintln(o.out)
	return nil
}

// waitTask polls a task until it is terminal, showing its state, step and
// progress on stderr.
func (o *ctlOpts) waitTask(id uint64) (*fsmpb.Task, error) {
	addrs := splitList(o.admin)
	c, err := o.dial(addrs)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	p := newProgressLine(o.errOut)
	defer p.done()
	var deadline <-chan time.Time
	if o.waitTimeout > 0 {
		t := time.NewTimer(o.waitTimeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		resp, err := rpc.Do(ctx, c, min(o.timeout, 5*time.Second), func(ctx context.Context, a pb.AdminClient) (*pb.GetTaskResponse, error) {
			return a.GetTask(ctx, &pb.GetTaskRequest{Id: id})
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("waiting for task %d: %w", id, rpcError(err))
		}
		t := resp.Task
		p.show(progressText(t))
		if fsm.Terminal(t.State) {
			return t, nil
		}
		select {
		case <-deadline:
			return nil, fmt.Errorf("task %d is still %s after waiting %s (it carries on; see ctl task show %d)", id, fsm.StateName(t.State), o.waitTimeout, id)
		case <-tick.C:
		}
	}
}

// progressText is one line about a task for progress displays.
func progressText(t *fsmpb.Task) string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %d %s volume %d: %s", t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State))
	if t.WorkerId != "" && !fsm.Terminal(t.State) {
		fmt.Fprintf(&b, " on %s", t.WorkerId)
	}
	if t.State == fsmpb.TaskState_TASK_STATE_RUNNING {
		fmt.Fprintf(&b, ", %.0f%%", t.Progress)
		if t.Step != "" {
			fmt.Fprintf(&b, " (%s)", t.Step)
		}
	}
	if t.Attempt > 1 && !fsm.Terminal(t.State) {
		fmt.Fprintf(&b, ", attempt %d", t.Attempt)
	}
	if t.State == fsmpb.TaskState_TASK_STATE_PENDING && t.LastError != "" {
		// Why it is not running: a plan wait's reason, or the last
		// attempt's error before its retry.
		fmt.Fprintf(&b, ", last: %s", t.LastError)
	}
	if t.CancelRequested && !fsm.Terminal(t.State) {
		b.WriteString(", cancelling: waiting for the worker to stop and roll back")
	}
	return b.String()
}
