package core

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// transactionTimeout is how long the broker keeps a transaction of a
// crashed instance open (holding back read_committed readers of the
// outputs and the next owner of its partitions) when no instance with
// the same TransactionalID comes back to abort it sooner.
const transactionTimeout = 15 * time.Second

// eos reports whether the processor runs with the exactly-once guarantee.
func (p *Processor) eos() bool { return p.cfg.Guarantee == GuaranteeExactlyOnce }

// runEOS is Run's exactly-once half: one Kafka transaction per poll holds
// its outputs, the changed per-device state and the consumed offsets.
func (p *Processor) runEOS(ctx context.Context, log *slog.Logger) error {
	sess, err := kgo.NewGroupTransactSession(append(p.clientOpts(log),
		kgo.RequireStableFetchOffsets(),
		kgo.TransactionalID(p.cfg.TransactionalID),
		kgo.TransactionTimeout(transactionTimeout),
		kgo.RecordPartitioner(statePartitioner{state: p.cfg.Topics.State, rest: kgo.UniformBytesPartitioner(64<<10, true, true, nil)}),
	)...)
	if err != nil {
		return fmt.Errorf("core: kafka client: %w", err)
	}
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(shutdownGrace, cancelWork)
		<-work.Done()
		t.Stop()
	})
	defer stopGrace()

	log.Info("core started", "guarantee", p.cfg.Guarantee, "transactional_id", p.cfg.TransactionalID, "instance_id", p.cfg.InstanceID,
		"brokers", p.cfg.KafkaBrokers, "group", p.cfg.Group,
		"raw", p.cfg.Topics.Raw, "enriched", p.cfg.Topics.Enriched,
		"late", p.cfg.Topics.Late, "dlq", p.cfg.Topics.DLQ, "shadow", p.cfg.Topics.Shadow,
		"state", p.cfg.Topics.State, "registry", p.cfg.Topics.Registry, "max_out_of_order", *p.cfg.MaxOutOfOrder,
		"allowed_lateness", p.cfg.AllowedLateness, "idle_timeout", p.cfg.IdleTimeout, "udfs", p.router.cur.Load().sig)

	runErr := p.loopEOS(ctx, work, sess)
	sess.AllowRebalance()
	sess.Close()
	if runErr != nil {
		log.Error("core stopped", "err", runErr)
		return runErr
	}
	log.Info("core stopped")
	return nil
}

func (p *Processor) loopEOS(ctx, work context.Context, sess *kgo.GroupTransactSession) error {
	for {
		fetches, ok := p.poll(ctx, sess)
		if !ok {
			return nil
		}
		if err := p.handlePollEOS(ctx, work, sess, fetches); err != nil {
			return err
		}
		sess.AllowRebalance()
	}
}

// handlePollEOS is handlePoll in one transaction: the state of the
// partitions that bring their first records since an assignment (or an
// abort) is read back from the changelog first; the outputs, the changed
// devices' state and the offsets of every polled record then commit
// together, or not at all (and the in-memory state is dropped, to be
// restored from the changelog as the last committed transaction left it).
func (p *Processor) handlePollEOS(ctx, work context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches) error {
	var (
		out []*kgo.Record
		err error
	)
	tbl := p.acquireTable()
	defer p.router.release()
	wall := time.Now()
	polled := false
	p.mu.Lock()
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if ftp.Topic != p.cfg.Topics.Raw || len(ftp.Records) == 0 {
			return
		}
		polled = true
		p.partition(ftp.Partition, wall)
	})
	// Every assigned partition is restored at the first poll, with
	// records or not: after an abort the consumer is rewound to offsets
	// past the readings the changelog holds in reorder buffers, and a
	// partition that brings no more records must still release them.
	toRestore := map[int32]*partitionState{}
	for part, st := range p.parts {
		if !st.restored {
			toRestore[part] = st
		}
	}
	if err = p.restore(work, toRestore); err != nil {
		p.mu.Unlock()
		p.rollback() // no partition keeps a half-read state
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	out, err = p.processPoll(work, tbl, fetches, wall, p.stateRecords)
	p.mu.Unlock()
	if err != nil {
		p.rollback()
		if ctx.Err() != nil {
			p.cfg.Logger.Warn("shutdown interrupted a UDF call; the poll will be processed again", "err", err)
			return nil
		}
		return err
	}
	if len(out) == 0 && !polled {
		// Nothing to commit, but the session still ends an (empty)
		// transaction: franz-go's GroupTransactSession hands a revoke to
		// OnPartitionsRevoked only once per transaction (it resets its
		// "revoked" flag in End), so without an End after every poll a
		// second cooperative revoke in a quiet spell would never reach
		// onRevoked and this instance would go on writing the state of a
		// partition that moved to another (seen in the scale test).
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("core: beginning a transaction: %w", err)
		}
		if _, err := sess.End(work, kgo.TryCommit); err != nil && ctx.Err() == nil {
			return fmt.Errorf("core: ending an empty transaction: %w", err)
		}
		return nil
	}

	if err := sess.Begin(); err != nil {
		p.rollback()
		return fmt.Errorf("core: beginning a transaction: %w", err)
	}
	if err := sess.ProduceSync(work, out...).FirstErr(); err != nil {
		p.rollback()
		if _, aerr := sess.End(work, kgo.TryAbort); aerr != nil && ctx.Err() == nil {
			return fmt.Errorf("core: aborting after a failed produce (%v): %w", err, aerr)
		}
		if ctx.Err() != nil {
			p.cfg.Logger.Warn("shutdown interrupted producing; the poll will be processed again", "err", err)
			return nil
		}
		return fmt.Errorf("core: producing outputs: %w", err)
	}
	committed, err := sess.End(work, kgo.TryCommit)
	if err != nil {
		p.rollback()
		if ctx.Err() != nil {
			p.cfg.Logger.Warn("shutdown interrupted committing; the poll will be processed again", "err", err)
			return nil
		}
		return fmt.Errorf("core: committing the transaction: %w", err)
	}
	if !committed {
		// A rebalance or a lost membership: the session rewound to the
		// committed offsets; the state goes back to the changelog's.
		p.m.commitErr.Inc()
		p.cfg.Logger.Warn("transaction aborted; the poll will be processed again from the committed state")
		p.rollback()
	}
	return nil
}

// rollback forgets the in-memory state of every partition: each is read
// back from the changelog before its next record is processed.
func (p *Processor) rollback() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for part := range p.parts {
		delete(p.parts, part)
		p.partition(part, now)
	}
}

// statePartitioner puts changelog records in the partition they name (the
// number of the raw partition of their device) and leaves every other
// topic to franz-go's default partitioner.
type statePartitioner struct {
	state string
	rest  kgo.Partitioner
}

func (sp statePartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == sp.state {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return sp.rest.ForTopic(topic)
}
