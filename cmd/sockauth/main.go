// Command sockauth runs the sockauth authority, the gRPC service that issues,
// rotates and revokes the session tokens of socket.io connections.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

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
	root.AddCommand(newServeCommand(), newSessionsCommand(), newRevokeCommand())
	return root
}

func newServeCommand() *cobra.Command {
	var (
		cfg      serve.Config
		insecure bool
		logLevel slog.Level
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
			// The authority mints tokens for any subject a caller names, and has
			// no caller authentication yet, so it must not be reachable from
			// other machines by accident.
			if !serve.IsLoopback(cfg.Listen) && !insecure {
				return fmt.Errorf("will not listen on %s: callers are not authenticated, so only loopback addresses are safe; "+
					"pass --insecure to listen there anyway", cfg.Listen)
			}

			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
			cfg.Logger = logger
			return run(cmd.Context(), cfg, logger)
		},
	}

	flags := cmd.Flags()
	flags.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	flags.StringVar(&cfg.DataDir, "data", "./sockauth-data", "folder for the key file and the Badger database")
	flags.StringVar(&cfg.Store, "store", "badger", "session store: badger (embedded, in --data) or redis (shared by several authorities)")
	flags.StringVar(&cfg.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL for --store redis")
	serve.AddLifetimeFlags(flags, &cfg)
	flags.BoolVar(&insecure, "insecure", false, "allow listening on a non-loopback address without caller authentication")
	flags.TextVar(&logLevel, "log-level", slog.LevelInfo, "minimum log level: debug, info, warn or error")
	return cmd
}

func run(ctx context.Context, cfg serve.Config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	authority, err := serve.Start(ctx, cfg)
	if err != nil {
		logger.Error("authority failed to start", "error", err)
		return err
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down", "signal", context.Cause(ctx))
	case err := <-authority.Done():
		logger.Error("gRPC server stopped", "error", err)
		authority.Close()
		return err
	}
	return authority.Close()
}
