// Package kafkatopic creates the Kafka topics a component needs before it
// produces or consumes, so that a fresh cluster (or a test's uniquely named
// topics) works without broker-side auto-creation, with the partition count
// that keeps each device's readings on one partition in order.
package kafkatopic

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Spec describes one topic. Zero Partitions means 6; zero Replication means
// the broker default. Configs are topic configs such as cleanup.policy.
type Spec struct {
	Name        string
	Partitions  int32
	Replication int16
	Configs     map[string]*string
}

// Ensure creates the topics that do not exist yet. Topics that exist are left
// as they are (their partition count is not changed).
func Ensure(ctx context.Context, cl *kgo.Client, specs ...Spec) error {
	adm := kadm.NewClient(cl)
	for _, s := range specs {
		p := s.Partitions
		if p == 0 {
			p = 6
		}
		r := s.Replication
		if r == 0 {
			r = -1
		}
		resp, err := adm.CreateTopic(ctx, p, r, s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafkatopic: creating %q: %w", s.Name, err)
		}
	}
	return nil
}
