package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/authority/badgerstore"
	"github.com/sockauth/sockauth/authority/redisstore"
	"github.com/sockauth/sockauth/internal/serve"
)

// inspectOptions are the flags of `sockauth token inspect`.
type inspectOptions struct {
	dataDir        string
	store          string
	redisURL       string
	rotationLeeway time.Duration
	timeout        time.Duration
}

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue login codes and debug tokens",
	}
	cmd.AddCommand(newIssueCommand())

	var opts inspectOptions
	inspect := &cobra.Command{
		Use:   "inspect [TOKEN | -]",
		Short: "Decrypt a token and print its claims and the state of its session",
		Long: `Decrypt a token with the key file in --data and print its claims and the
state of its session, to find out why the authority rejects a client.

The token is read from standard input when it is "-" or not given, which keeps
it out of the shell history. Key material is never printed, only key ids.

Session state comes from the Badger database in --data, which a running
authority locks; stop it first, or use 'sockauth sessions list' against it.
With --store redis the state is read from Redis while authorities run.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := serve.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			token, err := readTokenArgument(cmd.InOrStdin(), args)
			if err != nil {
				return err
			}
			return inspectToken(cmd.Context(), cmd.OutOrStdout(), token, opts)
		},
	}
	flags := inspect.Flags()
	flags.StringVar(&opts.dataDir, "data", "./sockauth-data", "data folder holding keys.json and the Badger database")
	flags.StringVar(&opts.store, "store", "badger", "session store to read: badger (in --data) or redis")
	flags.StringVar(&opts.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL for --store redis")
	flags.DurationVar(&opts.rotationLeeway, "rotation-leeway", authority.DefaultConfig().RotationLeeway,
		"rotation leeway of the authority, to tell whether a replaced token may still be presented")
	flags.DurationVar(&opts.timeout, "timeout", 10*time.Second, "deadline for reading the session store")
	cmd.AddCommand(inspect)
	return cmd
}

// readTokenArgument returns the token of args, or the first line of in when
// args is empty or "-".
func readTokenArgument(in io.Reader, args []string) (string, error) {
	if len(args) == 1 && args[0] != "-" {
		return strings.TrimSpace(args[0]), nil
	}
	reader := bufio.NewReader(io.LimitReader(in, authority.MaxTokenBytes+2))
	line, err := reader.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the token from standard input: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return "", errors.New("no token given: pass it as an argument or on standard input")
	}
	return token, nil
}

func inspectToken(ctx context.Context, out io.Writer, token string, opts inspectOptions) error {
	keys, err := loadKeySet(opts.dataDir)
	if err != nil {
		return fmt.Errorf("load the key file: %w", err)
	}

	// Every key in the file decrypts here, retired ones included, so that an
	// operator can read a token that the authority already rejects.
	codec, err := authority.NewPasetoV2(keys.Map(), keys.SigningKeyID)
	if err != nil {
		return fmt.Errorf("key file in %q: %w", opts.dataDir, err)
	}
	keyID := tokenKeyID(token)
	claims, err := codec.Decode(token)
	if err != nil {
		fmt.Fprintf(out, "key id:   %s\n", orDash(keyID))
		return fmt.Errorf("the token does not decrypt with the keys in %q, so the authority rejects it as TOKEN_INVALID: %w", opts.dataDir, err)
	}

	now := time.Now()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "key id:\t%s\t%s\n", keyID, keyState(keys, keyID))
	fmt.Fprintf(w, "type:\t%s\t\n", claims.Type)
	fmt.Fprintf(w, "subject:\t%s\t\n", claims.Subject)
	fmt.Fprintf(w, "session id:\t%s\t\n", claims.SessionID)
	fmt.Fprintf(w, "token id:\t%s\t\n", claims.TokenID)
	fmt.Fprintf(w, "generation:\t%d\t\n", claims.Generation)
	fmt.Fprintf(w, "issued at:\t%s\t\n", claims.IssuedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "expires at:\t%s\t%s\n", claims.ExpiresAt.UTC().Format(time.RFC3339), relative(now, claims.ExpiresAt))
	for _, name := range slices.Sorted(maps.Keys(claims.Extra)) {
		fmt.Fprintf(w, "claim %s:\t%q\t\n", name, claims.Extra[name])
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	session, note := loadSession(ctx, claims.SessionID, opts)
	if session == nil {
		fmt.Fprintf(out, "session state unavailable: %s\n", note)
		return nil
	}
	printSession(out, session, now)
	fmt.Fprintf(out, "\nverdict: %s\n", verdict(claims, session, now, opts.rotationLeeway))
	return nil
}

// loadSession reads the session from the configured store. It returns nil
// and the reason when the state cannot be read.
func loadSession(ctx context.Context, sessionID string, opts inspectOptions) (*authority.Session, string) {
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	var store authority.Store
	switch opts.store {
	case "badger":
		dir := filepath.Join(opts.dataDir, "badger")
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Sprintf("no Badger database in %q (%v)", dir, err)
		}
		// NOTE: opening the database takes Badger's directory lock, so an
		// authority that starts on this folder during the next moment fails
		// to start and must be restarted.
		opened, err := badgerstore.Open(dir, badgerstore.Options{Logger: quiet})
		if err != nil {
			if strings.Contains(err.Error(), "Cannot acquire directory lock") {
				return nil, fmt.Sprintf("the Badger database in %q is locked by a running authority; "+
					"stop it, or run 'sockauth sessions list --subject SUBJECT' against it", dir)
			}
			return nil, err.Error()
		}
		store = opened
	case "redis":
		opened, err := redisstore.Open(ctx, opts.redisURL, redisstore.Options{Logger: quiet})
		if err != nil {
			return nil, err.Error()
		}
		store = opened
	default:
		return nil, fmt.Sprintf("unknown store %q: use badger or redis", opts.store)
	}
	defer store.Close()

	session, err := store.Get(ctx, sessionID)
	if errors.Is(err, authority.ErrNotFound) {
		return nil, fmt.Sprintf("session %s is not in the %s store: it was never created there, or its last token "+
			"expired and the record was forgotten; the authority rejects it as SESSION_REVOKED", sessionID, opts.store)
	}
	if err != nil {
		return nil, fmt.Sprintf("read session %s: %v", sessionID, err)
	}
	return session, ""
}

func printSession(out io.Writer, s *authority.Session, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "session created:\t%s\t\n", s.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "session expires:\t%s\t%s\n", s.ExpiresAt.UTC().Format(time.RFC3339), relative(now, s.ExpiresAt))
	fmt.Fprintf(w, "current token id:\t%s\tgeneration %d, rotated %s\n", s.CurrentTokenID, s.Generation, relative(now, s.RotatedAt))
	fmt.Fprintf(w, "previous token id:\t%s\t\n", orDash(s.PreviousTokenID))
	fmt.Fprintf(w, "rotation confirmed:\t%t\t\n", s.Confirmed)
	revoked := "-"
	if s.Revoked() {
		revoked = s.RevokedReason + " at " + s.RevokedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "revoked:\t%s\t\n", revoked)
	w.Flush()
}

// verdict describes what the authority's Authenticate does with the token now,
// following the rules of authority.Service.
func verdict(c authority.Claims, s *authority.Session, now time.Time, leeway time.Duration) string {
	expired := !now.Before(c.ExpiresAt)
	switch {
	case expired && s.Subject == c.Subject && !s.Revoked() && !now.Before(s.LastTokenExpiry()):
		return "the token expired, and so did its session: SESSION_EXPIRED; the client must log in again"
	case expired:
		return "the token expired: TOKEN_EXPIRED; the client must log in again"
	case s.Subject != c.Subject:
		return "the token's subject differs from its session's: TOKEN_INVALID"
	case s.Revoked():
		return "the session was revoked (" + s.RevokedReason + "): SESSION_REVOKED; the client must log in again"
	case !now.Before(s.ExpiresAt):
		return "the session passed its maximum age: SESSION_EXPIRED; the client must log in again"
	case c.TokenID == s.CurrentTokenID:
		return "the token is its session's current one: Authenticate rotates it, Verify accepts it"
	case c.TokenID == s.PreviousTokenID && !s.Confirmed && now.Sub(s.RotatedAt) < leeway:
		return fmt.Sprintf("the token is the unconfirmed predecessor, inside the rotation leeway until %s: "+
			"Authenticate hands out the current token again", s.RotatedAt.Add(leeway).UTC().Format(time.RFC3339))
	case c.Type == authority.TypeSession:
		return "the token was replaced: Authenticate treats it as reuse (TOKEN_REUSED) and revokes the session; " +
			"Verify and Logout still accept it while the session lives"
	default:
		return "the login code was already exchanged: Authenticate treats it as reuse (TOKEN_REUSED) and revokes the session"
	}
}

// tokenKeyID returns the kid of the token's footer, or "" when the footer
// does not decode. The codec checks the footer again when it decrypts.
func tokenKeyID(token string) string {
	dot := strings.LastIndexByte(token, '.')
	if dot < 0 {
		return ""
	}
	footer, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		return ""
	}
	var parsed struct {
		KeyID string `json:"kid"`
	}
	if json.Unmarshal(footer, &parsed) != nil {
		return ""
	}
	return parsed.KeyID
}

// keyState describes the role of key id in the key file.
func keyState(keys *authority.KeySet, id string) string {
	if id == keys.SigningKeyID {
		return "(signing key)"
	}
	for _, record := range keys.Keys {
		if record.ID == id {
			return "(replaced at " + record.SigningEndedAt.UTC().Format(time.RFC3339) + ")"
		}
	}
	return "(not in the key file)"
}

// relative describes t relative to now, such as "in 59m0s" or "3s ago".
func relative(now, t time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
