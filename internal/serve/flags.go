package serve

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sockauth/sockauth/authority"
)

// EnvPrefix starts the environment variable of every flag: --code-ttl is also
// read from SOCKAUTH_CODE_TTL.
const EnvPrefix = "SOCKAUTH_"

// AddLifetimeFlags registers --code-ttl, --token-ttl, --session-max-age and
// --rotation-leeway on flags, with the defaults of authority.DefaultConfig.
func AddLifetimeFlags(flags *pflag.FlagSet, cfg *Config) {
	d := authority.DefaultConfig()
	flags.DurationVar(&cfg.CodeTTL, "code-ttl", d.CodeTTL, "lifetime of a login code")
	flags.DurationVar(&cfg.TokenTTL, "token-ttl", d.TokenTTL, "lifetime of a session token")
	flags.DurationVar(&cfg.SessionMaxAge, "session-max-age", d.SessionMaxAge, "absolute lifetime of a session, across all rotations")
	flags.DurationVar(&cfg.RotationLeeway, "rotation-leeway", d.RotationLeeway,
		"how long an unconfirmed predecessor token may be presented again and get its successor back")
}

// ApplyEnv sets every flag that was not given on the command line from its
// environment variable, SOCKAUTH_ followed by the flag name in upper case with
// dashes turned into underscores.
func ApplyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		value, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if setErr := flags.Set(f.Name, value); setErr != nil {
			err = fmt.Errorf("environment variable %s=%q: %w", name, value, setErr)
		}
	})
	return err
}

// IsLoopback reports whether a listen address binds only loopback interfaces.
// An empty host, as in ":7070", binds every interface and is not loopback.
func IsLoopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
