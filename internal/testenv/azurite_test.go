package testenv

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

func TestStartAzurite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Azurite and waits out its save interval: not a -short test")
	}
	t.Parallel()
	if _, err := AzuriteMain(); err != nil {
		skipOrFail(t, err)
	}
	ctx := context.Background()
	a, err := StartAzurite(ctx, AzuriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	dir, pid := a.Dir(), a.Pid()
	if !strings.HasPrefix(a.BlobEndpoint(), "http://127.0.0.1:") || !listening(a.Addr()) {
		t.Fatalf("endpoint %q / addr %q: not a listening 127.0.0.1 service", a.BlobEndpoint(), a.Addr())
	}
	if !alive(pid) {
		t.Fatalf("pid %d not running", pid)
	}

	client, err := azblob.NewClientFromConnectionString(a.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const container, name = "starter", "a/b/c.txt"
	want := []byte("hello, azurite\n")
	if _, err := client.CreateContainer(ctx, container, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UploadBuffer(ctx, container, name, want, nil); err != nil {
		t.Fatal(err)
	}
	get := func() []byte {
		t.Helper()
		resp, err := client.DownloadStream(ctx, container, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := get(); !bytes.Equal(got, want) {
		t.Fatalf("get = %q, want %q", got, want)
	}

	// Kill loses only the metadata of the last AzuriteSaveInterval: wait
	// it out, then the blob must survive Kill + Restart on the same port.
	time.Sleep(AzuriteSaveInterval + 2*time.Second)
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || listening(a.Addr()) {
		t.Fatalf("after Kill: pid %d alive=%v, listening=%v", pid, alive(pid), listening(a.Addr()))
	}
	downCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := client.UploadBuffer(downCtx, container, "down", want, nil); err == nil {
		t.Fatal("upload to a killed Azurite succeeded")
	}
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := get(); !bytes.Equal(got, want) {
		t.Fatalf("after Kill+Restart: get = %q, want %q", got, want)
	}
	pid = a.Pid()

	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left its temporary directory %s (stat: %v)", dir, err)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
