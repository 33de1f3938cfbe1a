// Command chat-demo is a small socket.io chat that authenticates its sockets
// with sockauth. It serves a login page, exchanges demo credentials for login
// codes from the authority, and lets only authenticated sockets send and
// receive chat messages. Without --authority it runs an authority in-process.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sockauth/sockauth/adapter"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/serve"
)

// defaultUsers are the demo users when no --user flag is given.
var defaultUsers = []string{"alice:alice-password", "bob:bob-password"}

// config is the parsed command line.
type config struct {
	// Listen is the HTTP listen address of the page, /login and /socket.io/.
	Listen string
	// Authority is the gRPC address of an external authority. Empty runs one
	// in-process with the settings of Serve.
	Authority string
	// AuthorityClient holds the service key and TLS settings of the
	// connection to an external authority. Its Address is not used.
	AuthorityClient authclient.Options
	AuthTimeout     time.Duration
	// EIO3Polling offers HTTP long-polling to socket.io 2.x clients.
	EIO3Polling bool
	// MetricsListen is the address of the Prometheus metrics of the
	// adapters; empty serves none.
	MetricsListen string
	// TrustedProxies are the networks of the reverse proxies whose
	// X-Forwarded-For header names the client of a socket.
	TrustedProxies []netip.Prefix
	// Users are NAME:PASSWORD pairs.
	Users    []string
	LogLevel slog.Level
	// LogFormat is serve.LogFormatText or serve.LogFormatJSON.
	LogFormat string
	// Serve configures the in-process authority. Its Listen is always a free
	// loopback port.
	Serve serve.Config
	// GCPercent is the garbage collector's target percentage. GOGC wins.
	GCPercent int
	// MemoryLimitMiB is the soft memory limit of the process in MiB. Zero
	// sets none, and GOMEMLIMIT wins.
	MemoryLimitMiB int64
}

func main() {
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	var cfg config

	cmd := &cobra.Command{
		Use:   "chat-demo",
		Short: "Run a socket.io chat whose sockets authenticate with sockauth",
		Long: `Run a socket.io chat whose sockets authenticate with sockauth.

Open the listen address in a browser and log in as one of the demo users.
Without --authority, the demo runs an authority in-process with its data in
--data. The lifetime flags configure only that authority.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFlags(cmd, cfg); err != nil {
				return err
			}
			if len(cfg.Users) == 0 {
				cfg.Users = defaultUsers
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			logger, err := serve.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
			if err != nil {
				return err
			}
			applyGCSettings(cfg.GCPercent, cfg.MemoryLimitMiB, logger)
			socketIdleMemory.Start(ctx, logger)
			return run(ctx, cfg, logger)
		},
	}

	flags := cmd.Flags()
	flags.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP listen address of the chat page, /login and /socket.io/")
	flags.StringVar(&cfg.Authority, "authority", "", "gRPC address of an external sockauth authority, such as 127.0.0.1:7070; empty runs one in-process")
	authclient.AddFlags(flags, authorityClientPrefix, &cfg.AuthorityClient)
	flags.DurationVar(&cfg.AuthTimeout, "auth-timeout", adapter.DefaultAuthTimeout, "how long a new socket may stay unauthenticated before it is disconnected")
	flags.BoolVar(&cfg.EIO3Polling, "eio3-polling", false, "also offer HTTP long-polling to socket.io 2.x clients, without the upgrade to WebSocket that go-socket.io v1.7.0 breaks (see docs/clients.md); without it 2.x clients must use WebSocket")
	cfg.TrustedProxies = slices.Clone(adapter.DefaultTrustedProxies)
	flags.Var(&prefixesFlag{prefixes: &cfg.TrustedProxies}, "trusted-proxies",
		"comma-separated networks of the reverse proxies in front of the demo; a socket that connects from one gets its client address, for the per-address limit of authenticate events, from X-Forwarded-For. The first use replaces the default and later uses add to it; an empty value trusts none")
	flags.StringArrayVar(&cfg.Users, "user", nil, "demo user as NAME:PASSWORD; repeat for more users (default alice:alice-password and bob:bob-password)")
	flags.StringVar(&cfg.Serve.DataDir, "data", "./chat-demo-data", "data folder of the in-process authority")
	serve.AddLifetimeFlags(flags, &cfg.Serve)
	cfg.LogLevel = slog.LevelInfo
	flags.Var(serve.LogLevelFlag{Level: &cfg.LogLevel}, "log-level", "minimum log level: debug, info, warn or error")
	flags.StringVar(&cfg.LogFormat, "log-format", serve.LogFormatText, "log format on standard error: text or json")
	flags.IntVar(&cfg.GCPercent, "gc-percent", defaultGCPercent,
		"garbage collector target: how far in percent the heap may grow over the live data before a collection; lower values keep less memory per idle socket and cost CPU (GOGC, when set, wins)")
	flags.Int64Var(&cfg.MemoryLimitMiB, "memory-limit", 0,
		"soft limit of the process's Go memory in MiB, such as 80% of a container's memory; 0 sets none (GOMEMLIMIT, when set, wins)")
	flags.StringVar(&cfg.MetricsListen, "metrics-listen", "", "address of the Prometheus /metrics listener of the sockauth adapters, such as 127.0.0.1:9464; empty serves no metrics")

	return cmd
}

// inProcessFlags are the flags that configure only the in-process authority.
var inProcessFlags = []string{"data", "code-ttl", "token-ttl", "session-max-age", "rotation-leeway"}

// authorityClientPrefix starts the names of the flags of the connection to
// an external authority, such as --authority-tls-ca.
const authorityClientPrefix = "authority-"

// checkFlags rejects flag combinations that would be silently ignored.
func checkFlags(cmd *cobra.Command, cfg config) error {
	if cfg.AuthTimeout <= 0 {
		return fmt.Errorf("invalid --auth-timeout %v: must be positive", cfg.AuthTimeout)
	}
	if cfg.GCPercent <= 0 {
		return fmt.Errorf("invalid --gc-percent %d: must be positive", cfg.GCPercent)
	}
	if cfg.MemoryLimitMiB < 0 {
		return fmt.Errorf("invalid --memory-limit %d: must be 0 (none) or a number of MiB", cfg.MemoryLimitMiB)
	}
	if cfg.Authority == "" {
		var err error
		cmd.Flags().Visit(func(flag *pflag.Flag) {
			if err == nil && strings.HasPrefix(flag.Name, authorityClientPrefix) {
				err = fmt.Errorf("--%s configures the connection to an external authority and needs --authority", flag.Name)
			}
		})
		return err
	}
	for _, name := range inProcessFlags {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s configures the in-process authority and cannot be used with --authority", name)
		}
	}
	return nil
}

// run starts the demo and blocks until ctx is done or the HTTP server fails,
// then shuts everything down.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	users, err := newUserStore(cfg.Users)
	if err != nil {
		return err
	}

	authorityAddr := cfg.Authority
	if authorityAddr == "" {
		authorityCfg := cfg.Serve
		authorityCfg.Listen = "127.0.0.1:0"
		authorityCfg.Logger = logger.With("component", "authority")

		inProcess, err := serve.Start(ctx, authorityCfg)
		if err != nil {
			return fmt.Errorf("start the in-process authority: %w", err)
		}
		defer func() {
			if err := inProcess.Close(); err != nil {
				logger.Error("closing the in-process authority failed", "err", err)
			}
		}()
		authorityAddr = inProcess.Addr()
	}

	app, err := newApp(ctx, cfg, users, authorityAddr, logger)
	if err != nil {
		return err
	}
	defer app.Close()

	return app.Serve(ctx)
}
