package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
	"github.com/sockauth/sockauth/internal/authclient"
	"github.com/sockauth/sockauth/internal/serve"
)

// adminOptions are the flags shared by the commands that call a running
// authority.
type adminOptions struct {
	client  authclient.Options
	timeout time.Duration
	// timeoutPerCall makes fn set the deadline of each call itself, as a
	// listing does for each page, instead of one deadline for all of fn.
	timeoutPerCall bool
}

func (o *adminOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.client.Address, "authority", "127.0.0.1:7070", "gRPC address of the running authority")
	authclient.AddFlags(cmd.Flags(), "", &o.client)
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of each call; a listing makes one call per page")
}

// call dials the authority, with replies of up to adminReplyMaxBytes, and
// runs fn with an admin client.
func (o *adminOptions) call(cmd *cobra.Command, fn func(ctx context.Context, client sockauthv1.AdminServiceClient) error) error {
	return o.callConn(cmd, "admin", func(ctx context.Context, conn *grpc.ClientConn) error {
		return fn(ctx, sockauthv1.NewAdminServiceClient(conn))
	}, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(adminReplyMaxBytes)))
}

// callConn dials the authority with dialOptions and runs fn with the
// connection. scope names the service key that the call needs, for the hint
// on a missing key.
func (o *adminOptions) callConn(cmd *cobra.Command, scope string, fn func(ctx context.Context, conn *grpc.ClientConn) error,
	dialOptions ...grpc.DialOption) error {
	if err := serve.ApplyEnv(cmd.Flags()); err != nil {
		return err
	}
	conn, err := authclient.Dial(o.client, dialOptions...)
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx, cancel := cmd.Context(), context.CancelFunc(func() {})
	if !o.timeoutPerCall {
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
	}
	defer cancel()
	if err := fn(ctx, conn); err != nil {
		if status.Code(err) == codes.Unauthenticated && o.client.ServiceKeyFile == "" {
			return fmt.Errorf("authority %s: %w (pass the %s service key with --key-file)", o.client.Address, err, scope)
		}
		if replyExceeds(err, adminReplyMaxBytes) {
			return fmt.Errorf("authority %s completed the call, but its reply exceeds the %d MiB that this command reads: %w",
				o.client.Address, adminReplyMaxBytes>>20, err)
		}
		return fmt.Errorf("authority %s: %w", o.client.Address, err)
	}
	return nil
}

// adminReplyMaxBytes is the largest reply that the admin commands read, in
// place of gRPC's default of 4 MiB. A listed or revoked session of a short
// subject took about 84 bytes of a reply, so this fits about three million
// of them. Each session repeats the subject, so long subjects fit fewer.
const adminReplyMaxBytes = 256 << 20

// replyExceeds reports whether err is this client's rejection of a reply
// larger than limit bytes. An authority rejects a request over its own limit
// with the same code, ResourceExhausted, before it runs the call, and names
// its own limit in the message.
//
// NOTE: this matches the message of grpc-go v1.85.0 (rpc_util.go),
// "received message larger than max (SIZE vs. LIMIT)". A version that words
// it differently makes the commands print gRPC's error without the hint.
func replyExceeds(err error, limit int) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.ResourceExhausted && strings.HasSuffix(s.Message(), fmt.Sprintf(" vs. %d)", limit))
}

func newSessionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Inspect the sessions of a running authority",
	}

	var (
		opts    adminOptions
		subject string
	)
	list := &cobra.Command{
		Use:   "list --subject SUBJECT",
		Short: "List the sessions of a subject, revoked ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.timeoutPerCall = true
			return opts.call(cmd, func(ctx context.Context, client sockauthv1.AdminServiceClient) error {
				table := newSessionTable(cmd.OutOrStdout())
				request := &sockauthv1.ListSessionsRequest{Subject: subject}
				// The Redis store of earlier versions could return a session
				// on two pages when its expiry grew between them, so each is
				// printed once.
				printed := make(map[string]bool)
				for {
					pageCtx, cancel := context.WithTimeout(ctx, opts.timeout)
					reply, err := client.ListSessions(pageCtx, request)
					cancel()
					if err != nil {
						return err
					}
					var fresh []*sockauthv1.SessionInfo
					for _, session := range reply.GetSessions() {
						if !printed[session.GetSessionId()] {
							printed[session.GetSessionId()] = true
							fresh = append(fresh, session)
						}
					}
					if err := table.print(fresh); err != nil {
						return err
					}
					if reply.GetNextPageToken() == "" {
						return nil
					}
					request.PageToken = reply.GetNextPageToken()
				}
			})
		},
	}
	opts.addFlags(list)
	list.Flags().StringVar(&subject, "subject", "", "subject whose sessions to list (required)")
	list.MarkFlagRequired("subject")
	cmd.AddCommand(list)
	return cmd
}

func newRevokeCommand() *cobra.Command {
	var (
		opts      adminOptions
		sessionID string
		subject   string
	)
	cmd := &cobra.Command{
		Use:   "revoke (--session ID | --subject SUBJECT)",
		Short: "Revoke one session, or every session of a subject",
		Long: `Revoke one session, or every session of a subject.

Sockets of a revoked session are disconnected by adapters that watch the
authority's revocation events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (sessionID == "") == (subject == "") {
				return errors.New("give exactly one of --session and --subject")
			}
			return opts.call(cmd, func(ctx context.Context, client sockauthv1.AdminServiceClient) error {
				if sessionID != "" {
					reply, err := client.RevokeSession(ctx, &sockauthv1.RevokeSessionRequest{SessionId: sessionID})
					if status.Code(err) == codes.NotFound {
						return fmt.Errorf("session %q not found; `sockauth sessions list --subject S` lists the sessions of a user", sessionID)
					}
					if err != nil {
						return err
					}
					return printSessions(cmd.OutOrStdout(), []*sockauthv1.SessionInfo{reply.GetSession()})
				}
				reply, err := client.RevokeSubject(ctx, &sockauthv1.RevokeSubjectRequest{Subject: subject})
				if code := status.Code(err); code == codes.DeadlineExceeded || code == codes.Canceled {
					return fmt.Errorf("%w; the authority revokes sessions until the call ends, so some may be revoked: "+
						"run the command again, with a longer --timeout for a subject with many sessions", err)
				}
				if err != nil {
					if count := revokedBeforeError(err); count > 0 {
						return fmt.Errorf("%w. The authority %s before the error. Run the command again to revoke the rest",
							err, revokedSummary(int(count), subject))
					}
					return err
				}
				listed := reply.GetSessions()
				// An authority older than revoked_count sends 0 and lists
				// every session.
				count := max(int(reply.GetRevokedCount()), len(listed))
				fmt.Fprintln(cmd.OutOrStdout(), revokedSummary(count, subject))
				if len(listed) == 0 {
					return nil
				}
				if count > len(listed) {
					fmt.Fprintf(cmd.OutOrStdout(), "the first %d are listed, and `sockauth sessions list` lists every session of the subject\n", len(listed))
				}
				return printSessions(cmd.OutOrStdout(), listed)
			})
		},
	}
	opts.addFlags(cmd)
	cmd.Flags().StringVar(&sessionID, "session", "", "id of the session to revoke")
	cmd.Flags().StringVar(&subject, "subject", "", "subject whose live sessions to revoke")
	return cmd
}

// revokedSummary returns the line that reports how many sessions of subject
// were revoked, with "session" singular for one.
func revokedSummary(count int, subject string) string {
	noun := "sessions"
	if count == 1 {
		noun = "session"
	}
	return fmt.Sprintf("revoked %d %s of %q", count, noun, subject)
}

// revokedBeforeError returns the count of revoked sessions that the
// authority attaches to a RevokeSubject error when it failed midway, or 0.
func revokedBeforeError(err error) int64 {
	for _, detail := range status.Convert(err).Details() {
		if partial, ok := detail.(*sockauthv1.RevokeSubjectResponse); ok {
			return partial.GetRevokedCount()
		}
	}
	return 0
}

func printSessions(out io.Writer, sessions []*sockauthv1.SessionInfo) error {
	return newSessionTable(out).print(sessions)
}

// sessionTable prints sessions as a table with one header line. Each call of
// print writes its rows at once, so a listing of many pages prints page by
// page.
type sessionTable struct {
	out     io.Writer
	started bool
}

func newSessionTable(out io.Writer) *sessionTable { return &sessionTable{out: out} }

// print writes the rows of sessions, after the header on the first call.
func (t *sessionTable) print(sessions []*sockauthv1.SessionInfo) error {
	w := tabwriter.NewWriter(t.out, 0, 4, 2, ' ', 0)
	if !t.started {
		t.started = true
		fmt.Fprintln(w, "SESSION\tSUBJECT\tCREATED\tROTATED\tGEN\tTOKEN EXPIRES\tSESSION EXPIRES\tREVOKED")
	}
	for _, s := range sessions {
		revoked := "-"
		if s.GetRevokedReason() != "" {
			revoked = s.GetRevokedReason() + " " + formatTime(s.GetRevokedAt())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.GetSessionId(), s.GetSubject(),
			formatTime(s.GetCreatedAt()), formatTime(s.GetRotatedAt()), s.GetGeneration(),
			formatTime(s.GetTokenExpiresAt()), formatTime(s.GetExpiresAt()), revoked)
	}
	return w.Flush()
}

func formatTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}
