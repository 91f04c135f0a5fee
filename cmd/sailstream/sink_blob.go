package main

import (
	"errors"
	"time"

	"github.com/sailstream/sailstream/sinks/blob"
)

// archiveFlags say where the raw archive is: a local directory or an Azure
// Blob container. Shared by `sink blob` and `replay`.
type archiveFlags struct {
	ArchiveDir            string `help:"Local directory holding the archive (same layout as the blob container)." placeholder:"DIR"`
	AzureConnectionString string `name:"azure-connection-string" help:"Azure Storage connection string (e.g. Azurite's)." placeholder:"STRING"`
	AzureAccount          string `help:"Azure storage account name; with --azure-key shared-key auth, without it Azure AD (DefaultAzureCredential: environment, workload or managed identity, az login)."`
	AzureKey              string `help:"Azure storage account key."`
	AzureAccountURL       string `name:"azure-account-url" help:"Blob service URL (default https://ACCOUNT.blob.core.windows.net/)."`
	Container             string `help:"Blob container, created if missing." default:"telemetry-raw"`
}

// store opens the archive the flags name.
func (f archiveFlags) store() (blob.Store, error) {
	azure := f.AzureConnectionString != "" || f.AzureAccount != "" || f.AzureAccountURL != ""
	switch {
	case azure && f.ArchiveDir != "":
		return nil, errors.New("set either --archive-dir or the --azure-* flags, not both")
	case azure:
		return blob.NewAzureStore(blob.AzureConfig{
			ConnectionString: f.AzureConnectionString, AccountURL: f.AzureAccountURL,
			AccountName: f.AzureAccount, AccountKey: f.AzureKey, Container: f.Container,
		})
	case f.ArchiveDir != "":
		return blob.NewDirStore(f.ArchiveDir)
	}
	return nil, errors.New("no archive: set --archive-dir, or --azure-connection-string, or --azure-account")
}

type sinkBlobCmd struct {
	kafkaFlags
	Group    string `help:"Kafka consumer group of the archivers (its committed offsets say what is archived)." default:"sailstream-blob"`
	RawTopic string `help:"Topic to archive." default:"telemetry.raw"`
	archiveFlags
	BatchSize    int           `help:"Upload a partition's batch when it holds this many records." default:"10000"`
	BatchTimeout time.Duration `help:"Upload a partition's batch at most this long after its first record." default:"30s"`
	MetricsAddr  string        `help:"Where to serve Prometheus metrics on /metrics; empty disables." default:"127.0.0.1:9465"`
}

func (c *sinkBlobCmd) Run(rc *runContext) error {
	store, err := c.store()
	if err != nil {
		return err
	}
	reg := newRegistry()
	a, err := blob.New(blob.Config{
		KafkaBrokers: c.KafkaBrokers, Group: c.Group, Topic: c.RawTopic, Store: store,
		BatchSize: c.BatchSize, BatchTimeout: c.BatchTimeout,
		Logger: rc.log.With("component", "sink-blob"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	return runWithMetrics(rc, c.MetricsAddr, reg, a.Run)
}
