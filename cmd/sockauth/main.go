// Command sockauth runs the sockauth authority, the gRPC service that issues,
// rotates and revokes the session tokens of socket.io connections.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockauth/sockauth/internal/idlememory"
	"github.com/sockauth/sockauth/internal/serve"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "sockauth",
		Short:         "Token authority for socket.io connections",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(newServeCommand(), newSessionsCommand(), newRevokeCommand(), newKeysCommand(), newTokenCommand(), newBenchCommand())
	return root
}

func newServeCommand() *cobra.Command {
	var (
		cfg            serve.Config
		logLevel       slog.Level
		logFormat      string
		memoryLimitMiB int64
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authority's gRPC server",
		Long: `Run the authority's gRPC server.

Every flag can also be set with an environment variable: SOCKAUTH_ followed by
the flag name in upper case with dashes turned into underscores, such as
SOCKAUTH_TOKEN_TTL=2h. A flag given on the command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := serve.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			logger, err := serve.NewLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			applyMemoryLimit(memoryLimitMiB, logger)
			return run(cmd.Context(), cfg, logger)
		},
	}

	flags := cmd.Flags()
	flags.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	flags.StringVar(&cfg.DataDir, "data", "./sockauth-data", "folder for the key file and the Badger database")
	flags.StringVar(&cfg.Store, "store", "badger", "session store: badger (embedded, in --data) or redis (shared by several authorities)")
	flags.StringVar(&cfg.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL for --store redis")
	serve.AddLifetimeFlags(flags, &cfg)
	flags.StringVar(&cfg.ServiceKeyFile, "service-keys", "",
		"file of service keys (SCOPE:NAME:SECRET lines, scope socket, token or admin) that callers must send; re-read when it changes")
	flags.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate of the gRPC server; turns TLS on")
	flags.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	flags.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "PEM CA of client certificates; requires mutual TLS")
	flags.BoolVar(&cfg.Insecure, "insecure", false,
		"allow a non-loopback --listen address without TLS or service keys, and a non-loopback --metrics-listen address")
	flags.StringVar(&cfg.MetricsListen, "metrics-listen", "",
		"HTTP address of the Prometheus metrics at /metrics, such as 127.0.0.1:9090; empty serves none")
	logLevel = slog.LevelInfo
	flags.Var(serve.LogLevelFlag{Level: &logLevel}, "log-level", "minimum log level: debug, info, warn or error")
	flags.StringVar(&logFormat, "log-format", serve.LogFormatText, "log format on standard error: text or json")
	flags.Int64Var(&memoryLimitMiB, "memory-limit", defaultMemoryLimitMiB,
		"soft limit of the process's Go memory in MiB, so that memory freed after Badger compactions returns to the system sooner; 0 sets none (GOMEMLIMIT, when set, wins)")
	return cmd
}

// defaultMemoryLimitMiB is the default soft memory limit. Badger's compactions
// allocate tens of MiB at a time, and without a limit the Go runtime keeps that
// memory long after. The anonymous memory of an authority holding a million
// sessions was then about 1.7 times as large (measured with make bench).
const defaultMemoryLimitMiB = 128

// applyMemoryLimit sets the Go runtime's soft memory limit unless GOMEMLIMIT
// already did. The limit is soft: the process may exceed it, and the garbage
// collector then runs more often, with at most about half of the CPU.
func applyMemoryLimit(limitMiB int64, logger *slog.Logger) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set || limitMiB <= 0 {
		return
	}
	debug.SetMemoryLimit(limitMiB << 20)
	logger.Debug("soft memory limit set", "mib", limitMiB)
}

// authorityIdleMemory is the setting that decides when `sockauth serve`
// returns its idle heap. An idle authority allocated 0.6 MB in 30 s, one
// scrape of /metrics included, so 4 MiB in 5 s leaves room for the store's
// background work.
var authorityIdleMemory = idlememory.Config{Interval: 5 * time.Second, QuietBytes: 4 << 20, MinReclaimBytes: 16 << 20}

func run(ctx context.Context, cfg serve.Config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	authority, err := serve.Start(ctx, cfg)
	if err != nil {
		logger.Error("authority failed to start", "error", err)
		return err
	}

	authorityIdleMemory.Start(ctx, logger)

	// A hangup would otherwise end the process without a log line. The key
	// file is reread within a second of a change, and flags and environment
	// are read once at start, so there is nothing for it to reload.
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	defer signal.Stop(hangups)

	for {
		select {
		case <-hangups:
			logger.Info("SIGHUP ignored: key file changes take effect within a second, and other settings need a restart")
		case <-ctx.Done():
			logger.Info("shutting down", "signal", context.Cause(ctx))
			return authority.Close()
		case err := <-authority.Done():
			logger.Error("gRPC server stopped", "error", err)
			authority.Close()
			return err
		}
	}
}
