package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sailstream/sailstream/udf"
	"github.com/sailstream/sailstream/udf/admin"
	"github.com/sailstream/sailstream/udf/registry"
	"github.com/sailstream/sailstream/udf/scaffold"
	"github.com/sailstream/sailstream/udf/udftest"
)

// udfCmd is `sailstream udf`: write, build, test and deploy UDFs.
//
// The commands that change the registry (deploy, shadow, promote,
// rollback, routes set, list) talk to the core's admin API by default
// (--admin-url, SAILSTREAM_ADMIN_URL; --token, SAILSTREAM_ADMIN_TOKEN). With
// --kafka-brokers they write the udf.modules topic directly instead,
// validating the module in this process: for a machine that reaches Kafka
// but not a core.
type udfCmd struct {
	Init     udfInitCmd     `cmd:"" help:"Create a UDF project from a template: --lang go|assemblyscript|c NAME."`
	Build    udfBuildCmd    `cmd:"" help:"Build a UDF project into a .wasm module."`
	Test     udfTestCmd     `cmd:"" help:"Run a module against test vectors; prints a readable diff and fails on any difference."`
	Deploy   udfDeployCmd   `cmd:"" help:"Deploy a module: it becomes the live version of its UDF on every core."`
	Shadow   udfShadowCmd   `cmd:"" help:"Run a module as the shadow of its UDF: same batches as the live version, outputs compared and kept aside in telemetry.shadow."`
	Promote  udfPromoteCmd  `cmd:"" help:"Make the shadow of a UDF live."`
	Rollback udfRollbackCmd `cmd:"" help:"Drop the shadow of a UDF; without a shadow, make the previous version live again."`
	List     udfListCmd     `cmd:"" help:"Show deployed UDFs, their versions and the routes."`
	Routes   udfRoutesCmd   `cmd:"" help:"Route devices to UDFs."`
}

type udfInitCmd struct {
	Lang string `help:"Language of the template: go, assemblyscript or c." default:"go" enum:"go,assemblyscript,c,as"`
	Dir  string `help:"Directory to create (default: ./NAME)." type:"path"`
	Name string `arg:"" help:"Name of the UDF (also its directory)."`
}

func (c *udfInitCmd) Run() error {
	if !registry.ValidName(c.Name) {
		return fmt.Errorf("udf init: name %q: use 1-64 characters of A-Z a-z 0-9 _ . - (starting with a letter or digit)", c.Name)
	}
	dir := c.Dir
	if dir == "" {
		dir = c.Name
	}
	lang := c.Lang
	if lang == "as" {
		lang = "assemblyscript"
	}
	if err := scaffold.Init(lang, c.Name, dir); err != nil {
		return fmt.Errorf("udf init: %w", err)
	}
	fmt.Printf("created %s UDF %q in %s\nnext: edit it, then\n  sailstream udf build %s\n  sailstream udf test %s --vectors %s\n",
		lang, c.Name, dir, dir, filepath.Join(dir, c.Name+".wasm"), filepath.Join(dir, "testdata"))
	return nil
}

type udfBuildCmd struct {
	Lang   string `help:"Language of the project (default: detected from its files)." enum:",go,assemblyscript,c,as" default:""`
	Output string `short:"o" help:"Where to write the module (default: DIR/NAME.wasm, NAME being the directory's name)." type:"path"`
	Dir    string `arg:"" optional:"" help:"Project directory." default:"." type:"existingdir"`
}

func (c *udfBuildCmd) Run(rc *runContext) error {
	lang := c.Lang
	if lang == "as" {
		lang = "assemblyscript"
	}
	if lang == "" {
		var err error
		if lang, err = detectLang(c.Dir); err != nil {
			return err
		}
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	out := c.Output
	if out == "" {
		out = filepath.Join(c.Dir, filepath.Base(abs)+".wasm")
	}
	start := time.Now()
	wasm, err := scaffold.Build(rc.ctx, lang, c.Dir)
	if err != nil {
		return fmt.Errorf("udf build: %w", err)
	}
	if err := os.WriteFile(out, wasm, 0o644); err != nil {
		return fmt.Errorf("udf build: %w", err)
	}
	fmt.Printf("built %s (%s, %d bytes, sha256 %s) in %s\n", out, lang, len(wasm), registry.Hash(wasm)[:12], time.Since(start).Round(time.Millisecond))
	return nil
}

// detectLang tells a project's language from its files.
func detectLang(dir string) (string, error) {
	has := func(pattern string) bool {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		return len(m) > 0
	}
	switch {
	case has("*.go"):
		return "go", nil
	case has(filepath.Join("assembly", "index.ts")), has("index.ts"):
		return "assemblyscript", nil
	case has("*.c"):
		return "c", nil
	}
	return "", fmt.Errorf("udf build: cannot tell the language of %s (no *.go, assembly/index.ts, index.ts or *.c): use --lang", dir)
}

type udfTestCmd struct {
	File    string `arg:"" help:"The module (.wasm)." type:"existingfile"`
	Vectors string `help:"Directory of test vector files (*.json, see udf/testdata)." required:"" type:"existingdir"`
	udfEngineFlags
}

func (c *udfTestCmd) Run(rc *runContext) error {
	wasm, err := os.ReadFile(c.File)
	if err != nil {
		return err
	}
	eng, err := c.engine()
	if err != nil {
		return err
	}
	defer eng.Close(context.Background())
	mod, err := eng.Load(rc.ctx, wasm, udf.Limits{})
	if err != nil {
		return fmt.Errorf("udf test: %s: %w", c.File, err)
	}
	defer mod.Close(context.Background())
	rep, err := udftest.Run(rc.ctx, mod, c.Vectors)
	if err != nil {
		return fmt.Errorf("udf test: %w", err)
	}
	info := mod.Info()
	fmt.Printf("%s (%s %s): ", c.File, info.Name, info.Version)
	fmt.Println(rep.String())
	if !rep.OK() {
		return fmt.Errorf("udf test: %d of %d cases differ", rep.Failed, rep.Cases)
	}
	return nil
}

// udfEngineFlags configure the local engine (udf test; deploy with
// --kafka-brokers validates locally).
type udfEngineFlags struct {
	CacheDir string `help:"Compilation cache of Wasm modules (default: the user cache directory)." type:"path"`
}

func (f udfEngineFlags) engine() (*udf.Engine, error) {
	dir := f.CacheDir
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "sailstream", "wasm")
		}
	}
	return udf.NewEngine(udf.Config{CacheDir: dir})
}

// udfRemoteFlags say where the registry is: the admin API, or Kafka.
type udfRemoteFlags struct {
	AdminURL     string   `name:"admin-url" help:"Base URL of the core's admin API." default:"http://127.0.0.1:9470"`
	Token        string   `name:"token" env:"SAILSTREAM_ADMIN_TOKEN" help:"Bearer token of the admin API (env SAILSTREAM_ADMIN_TOKEN)."`
	KafkaBrokers []string `name:"kafka-brokers" env:"SAILSTREAM_UDF_KAFKA_BROKERS" help:"Write the registry topic on these Kafka brokers directly instead of calling the admin API."`
	Topic        string   `help:"Registry topic (with --kafka-brokers)." default:"udf.modules"`
	udfEngineFlags
}

// udfControl is what the registry commands need; the admin API client and
// a direct publisher both provide it.
type udfControl interface {
	admin.Control
	View(ctx context.Context) (admin.View, error)
}

// kafkaControl is the direct-to-Kafka control.
type kafkaControl struct {
	*registry.Publisher
}

func (k kafkaControl) View(ctx context.Context) (admin.View, error) {
	s, err := k.List(ctx)
	if err != nil {
		return admin.View{}, err
	}
	return admin.NewView(s), nil
}

// adminControl is the admin API; List is not used by the commands.
type adminControl struct {
	*admin.Client
}

func (a adminControl) List(context.Context) (*registry.State, error) {
	return nil, errors.New("udf: the admin API lists a view, not the state")
}

func (f udfRemoteFlags) control(rc *runContext) (udfControl, func(), error) {
	if len(f.KafkaBrokers) > 0 {
		eng, err := f.engine()
		if err != nil {
			return nil, nil, err
		}
		p, err := registry.NewPublisher(registry.PublisherConfig{
			KafkaBrokers: f.KafkaBrokers, Topic: f.Topic, Engine: eng, Logger: rc.log,
		})
		if err != nil {
			_ = eng.Close(context.Background())
			return nil, nil, err
		}
		return kafkaControl{p}, func() { p.Close(); _ = eng.Close(context.Background()) }, nil
	}
	return adminControl{&admin.Client{URL: f.AdminURL, Token: f.Token}}, func() {}, nil
}

type udfDeployCmd struct {
	udfModuleFlags
	Shadow bool `help:"Run it as the shadow of its UDF instead (same as udf shadow)."`
}

// udfModuleFlags name a module file and override its manifest.
type udfModuleFlags struct {
	File    string   `arg:"" help:"The module (.wasm); a manifest NAME.json or NAME.manifest.json beside it is read too." type:"existingfile"`
	Name    string   `help:"UDF name (default: the manifest's, else the module's own, else the file name)."`
	Version string   `help:"Version (default: the manifest's, else the module's own, else the hash prefix)."`
	Route   []string `help:"Route devices matching this pattern (path.Match syntax, e.g. 'buoy-*') to the UDF; repeatable."`
	Default bool     `help:"Make it the route of every device no rule matches."`
	udfRemoteFlags
}

func (f udfModuleFlags) load() ([]byte, registry.Manifest, error) {
	wasm, err := os.ReadFile(f.File)
	if err != nil {
		return nil, registry.Manifest{}, err
	}
	m, _, err := registry.LoadManifest(f.File)
	if err != nil {
		return nil, registry.Manifest{}, err
	}
	if f.Name != "" {
		m.Name = f.Name
	}
	if f.Version != "" {
		m.Version = f.Version
	}
	m.Routes = append(m.Routes, f.Route...)
	m.Default = m.Default || f.Default
	return wasm, m, m.Validate()
}

func (c *udfDeployCmd) Run(rc *runContext) error {
	return c.udfModuleFlags.run(rc, c.Shadow)
}

func (f udfModuleFlags) run(rc *runContext, shadow bool) error {
	wasm, m, err := f.load()
	if err != nil {
		return err
	}
	ctl, done, err := f.control(rc)
	if err != nil {
		return err
	}
	defer done()
	var res registry.Result
	if shadow {
		res, err = ctl.Shadow(rc.ctx, wasm, m)
	} else {
		res, err = ctl.Deploy(rc.ctx, wasm, m)
	}
	if err != nil {
		return err
	}
	printResult(os.Stdout, res)
	return nil
}

type udfShadowCmd struct {
	udfModuleFlags
}

func (c *udfShadowCmd) Run(rc *runContext) error { return c.udfModuleFlags.run(rc, true) }

type udfPromoteCmd struct {
	Name string `arg:"" help:"The UDF whose shadow becomes live."`
	udfRemoteFlags
}

func (c *udfPromoteCmd) Run(rc *runContext) error {
	ctl, done, err := c.control(rc)
	if err != nil {
		return err
	}
	defer done()
	res, err := ctl.Promote(rc.ctx, c.Name)
	if err != nil {
		return err
	}
	printResult(os.Stdout, res)
	return nil
}

type udfRollbackCmd struct {
	Name string `arg:"" help:"The UDF to roll back."`
	udfRemoteFlags
}

func (c *udfRollbackCmd) Run(rc *runContext) error {
	ctl, done, err := c.control(rc)
	if err != nil {
		return err
	}
	defer done()
	res, err := ctl.Rollback(rc.ctx, c.Name)
	if err != nil {
		return err
	}
	printResult(os.Stdout, res)
	return nil
}

type udfListCmd struct {
	JSON bool `name:"json" help:"Print JSON."`
	udfRemoteFlags
}

func (c *udfListCmd) Run(rc *runContext) error {
	ctl, done, err := c.control(rc)
	if err != nil {
		return err
	}
	defer done()
	v, err := ctl.View(rc.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	printView(os.Stdout, v)
	return nil
}

type udfRoutesCmd struct {
	Set udfRoutesSetCmd `cmd:"" help:"Replace the routes: PATTERN=UDF ... (tried in order, first match wins); --default names the UDF of every other device."`
}

type udfRoutesSetCmd struct {
	Rules   []string `arg:"" optional:"" help:"PATTERN=UDF, e.g. 'buoy-*=geofence'."`
	Default string   `help:"UDF of the devices no rule matches." default:"speed"`
	udfRemoteFlags
}

func (c *udfRoutesSetCmd) Run(rc *runContext) error {
	r, err := parseRoutes(c.Rules, c.Default)
	if err != nil {
		return err
	}
	ctl, done, err := c.control(rc)
	if err != nil {
		return err
	}
	defer done()
	res, err := ctl.SetRoutes(rc.ctx, r)
	if err != nil {
		return err
	}
	printResult(os.Stdout, res)
	return nil
}

// parseRoutes reads PATTERN=UDF arguments.
func parseRoutes(rules []string, def string) (registry.Routes, error) {
	r := registry.Routes{Default: def}
	for _, a := range rules {
		p, name, ok := strings.Cut(a, "=")
		if !ok || p == "" || name == "" {
			return r, fmt.Errorf("udf routes set: %q: want PATTERN=UDF, e.g. 'buoy-*=geofence'", a)
		}
		r.Rules = append(r.Rules, registry.Route{Pattern: p, UDF: name})
	}
	return r, r.Validate()
}

func refString(r *registry.Ref) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", r.Version, shortSHA(r.SHA256))
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func printResult(w io.Writer, res registry.Result) {
	what := res.Action
	if !res.Changed {
		what += ": nothing to change"
	}
	fmt.Fprintf(w, "%s %s\n", what, res.Name)
	if d := res.Deployment; d != nil {
		fmt.Fprintf(w, "  live:   %s\n", liveString(*d))
		if d.Shadow != nil {
			fmt.Fprintf(w, "  shadow: %s\n", refString(d.Shadow))
		}
		if len(d.Previous) > 0 {
			var prev []string
			for _, p := range d.Previous {
				prev = append(prev, p.Version)
			}
			fmt.Fprintf(w, "  previous: %s\n", strings.Join(prev, ", "))
		}
	} else if res.Name != "" {
		fmt.Fprintf(w, "  live:   built-in\n")
	}
	fmt.Fprintf(w, "routes: %s\n", routesString(res.Routes))
}

// liveString names the live version; Live nil is the built-in module of
// the default UDF.
func liveString(d registry.Deployment) string {
	if d.Live == nil {
		return "built-in"
	}
	return refString(d.Live)
}

func routesString(r registry.Routes) string {
	var parts []string
	for _, rule := range r.Rules {
		parts = append(parts, rule.Pattern+" → "+rule.UDF)
	}
	return strings.Join(append(parts, "default → "+r.Default), "; ")
}

func printView(w io.Writer, v admin.View) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UDF\tLIVE\tSHADOW\tPREVIOUS\tDEPLOYED")
	builtin := true
	for _, d := range v.Deployments {
		if d.Name == registry.DefaultUDF {
			builtin = false
		}
		var prev []string
		for _, p := range d.Previous {
			prev = append(prev, p.Version)
		}
		at := ""
		if d.Live != nil {
			at = d.Live.DeployedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, liveString(d), refString(d.Shadow), strings.Join(prev, ","), at)
	}
	if builtin {
		fmt.Fprintf(tw, "%s\tbuilt-in\t-\t\t\n", registry.DefaultUDF)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "routes: %s\n", routesString(v.Routes))
}
