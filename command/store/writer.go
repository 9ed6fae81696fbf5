package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// writer runs SQLite's write transactions, one at a time, on one
// goroutine, and commits the ones that queued up meanwhile together
// (group commit): each in its own savepoint, so that one that fails is
// rolled back alone, and all of them in one transaction, so that the
// commit and its fsync are paid once. A caller returns only after the
// commit that holds its changes (or with its failure); the outcome for
// each caller is what running the transactions one after the other would
// give, in queue order.
//
// SQLite allows one writer at a time anyway; without the writer,
// concurrent transactions queue on a lock and each pays a commit.
type writer struct {
	db   *sql.DB
	wrap func(error) error
	ops  chan *writeOp
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type writeOp struct {
	ctx context.Context
	fn  func(ctx context.Context, tx *sql.Tx) error
	res chan error
}

// maxGroup bounds the transactions committed together.
const maxGroup = 64

func newWriter(db *sql.DB, wrap func(error) error) *writer {
	w := &writer{db: db, wrap: wrap, ops: make(chan *writeOp), stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// close stops the writer after the group in progress.
func (w *writer) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// do runs fn in a write transaction and returns its outcome after the
// commit. fn gets a context without cancellation: once it runs, it runs to
// the end, because other transactions share its commit.
func (w *writer) do(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, res: make(chan error, 1)}
	select {
	case w.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stop:
		return fmt.Errorf("%w: the store is closed", ErrUnavailable)
	}
	return <-op.res // handed over: it may commit, so wait for the outcome
}

func (w *writer) loop() {
	defer close(w.done)
	for {
		var first *writeOp
		select {
		case first = <-w.ops:
		case <-w.stop:
			return
		}
		group := []*writeOp{first}
	more:
		for len(group) < maxGroup {
			select {
			case op := <-w.ops:
				group = append(group, op)
			default:
				break more
			}
		}
		w.run(group)
	}
}

// run commits a group: each operation in a savepoint (when there are
// several), then one commit.
func (w *writer) run(group []*writeOp) {
	ops := group[:0]
	for _, op := range group {
		if err := op.ctx.Err(); err != nil {
			op.res <- err
			continue
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return
	}
	errs := make([]error, len(ops))
	reply := func() {
		for i, op := range ops {
			op.res <- w.wrap(errs[i])
		}
	}
	ctx := context.Background()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		reply()
		return
	}
	// abort rolls everything back: every operation that has not failed
	// on its own fails with err.
	abort := func(err error) {
		tx.Rollback()
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		reply()
	}
	single := len(ops) == 1
	ok := 0
	for i, op := range ops {
		if !single {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
				abort(err)
				return
			}
		}
		if err := op.fn(context.WithoutCancel(op.ctx), tx); err != nil {
			errs[i] = err
			if !single {
				if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO w"); rerr != nil {
					abort(rerr)
					return
				}
				if _, rerr := tx.ExecContext(ctx, "RELEASE w"); rerr != nil {
					abort(rerr)
					return
				}
			}
			continue
		}
		if !single {
			if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
				abort(err)
				return
			}
		}
		ok++
	}
	if ok == 0 {
		tx.Rollback()
	} else if err := tx.Commit(); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	reply()
}
