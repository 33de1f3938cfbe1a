package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	sockauthv1 "github.com/sockauth/sockauth/gen/sockauth/v1"
)

func newIssueCommand() *cobra.Command {
	var (
		opts    adminOptions
		subject string
		claims  []string
	)
	cmd := &cobra.Command{
		Use:   "issue --subject SUBJECT [--claim NAME=VALUE]...",
		Short: "Issue a login code for a subject, as an application's login endpoint does",
		Long: `Issue a login code for a subject by calling IssueCode on a running authority,
as an application's login endpoint does after it checked the user's
credentials, and print the code on standard output. A socket client trades
the code for a session token with the authenticate event within the code's
lifetime (30 s by default).

An authority that requires service keys needs a key of the token scope in
--key-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			request, err := issueCodeRequest(subject, claims)
			if err != nil {
				return err
			}
			return opts.callConn(cmd, "token", func(ctx context.Context, conn *grpc.ClientConn) error {
				reply, err := sockauthv1.NewAuthorityServiceClient(conn).IssueCode(ctx, request)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), reply.GetCode())
				return err
			})
		},
	}
	opts.addFlags(cmd)
	cmd.Flags().StringVar(&subject, "subject", "", "the authenticated user (required)")
	cmd.Flags().StringArrayVar(&claims, "claim", nil, "an application claim as NAME=VALUE, copied into every token of the session; repeat for more")
	return cmd
}

// issueCodeRequest builds the IssueCode request of the flags. The authority
// checks the limits of subject and claims itself.
func issueCodeRequest(subject string, claims []string) (*sockauthv1.IssueCodeRequest, error) {
	if subject == "" {
		return nil, fmt.Errorf("missing --subject: name the user to issue the code for")
	}
	request := &sockauthv1.IssueCodeRequest{Subject: subject}
	for _, claim := range claims {
		name, value, ok := strings.Cut(claim, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("invalid --claim %q: expected NAME=VALUE", claim)
		}
		if _, repeated := request.Claims[name]; repeated {
			return nil, fmt.Errorf("invalid --claim %q: claim %q is given twice", claim, name)
		}
		if request.Claims == nil {
			request.Claims = map[string]string{}
		}
		request.Claims[name] = value
	}
	return request, nil
}
