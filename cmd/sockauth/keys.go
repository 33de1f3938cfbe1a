package main

import (
	"errors"
	"fmt"
	"io/fs"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockauth/sockauth/authority"
	"github.com/sockauth/sockauth/internal/serve"
)

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the token keys in the data folder",
		Long: `Manage the token keys in the data folder.

A running authority re-reads the key file within a second of a change, so a
rotation needs no restart. With several replicas, give each the new key file.`,
	}

	var (
		dataDir  string
		tokenTTL time.Duration
	)
	addFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&dataDir, "data", "./sockauth-data", "data folder holding keys.json")
		c.Flags().DurationVar(&tokenTTL, "token-ttl", 0,
			"token lifetime that sets when a replaced key retires. The longer of this and the lifetime that "+
				"sockauth serve recorded in the key file applies, and rotate records a longer one (default: the "+
				"recorded lifetime, or "+authority.DefaultConfig().TokenTTL.String()+" when none is recorded)")
	}
	// checkTokenTTL rejects a --token-ttl that is negative or above
	// authority.MaxLifetime.
	checkTokenTTL := func() error {
		if tokenTTL < 0 || tokenTTL > authority.MaxLifetime {
			return fmt.Errorf("invalid --token-ttl %s: pass 0 for the lifetime recorded in the key file, "+
				"or a positive duration up to %s", tokenTTL, authority.MaxLifetime)
		}
		return nil
	}
	// retirementTTL returns the token lifetime after which a replaced key of
	// the set retires.
	retirementTTL := func(keys *authority.KeySet) time.Duration {
		if tokenTTL == 0 && keys.TokenTTL == 0 {
			return authority.DefaultConfig().TokenTTL
		}
		return keys.RetirementTTL(tokenTTL)
	}

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a key that signs from now on; older keys keep verifying until their tokens expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := serve.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			if err := checkTokenTTL(); err != nil {
				return err
			}
			var previous, id string
			keys, err := authority.UpdateKeySet(dataDir, func(keys *authority.KeySet) error {
				previous = keys.SigningKeyID
				var err error
				id, err = keys.Rotate(time.Now(), retirementTTL(keys))
				// A longer lifetime than the recorded one holds for later
				// rotations and listings too.
				if tokenTTL > time.Duration(keys.TokenTTL) {
					keys.TokenTTL = authority.Lifetime(tokenTTL)
				}
				return err
			})
			if errors.Is(err, fs.ErrNotExist) {
				return missingKeyFile(dataDir, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s signs from now on; key %s verifies until %s\n",
				id, previous, formatRetirement(keys, previous, retirementTTL(keys)))
			return nil
		},
	}
	addFlags(rotate)

	list := &cobra.Command{
		Use:   "list",
		Short: "List key ids, creation and retirement; secrets are never printed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := serve.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			if err := checkTokenTTL(); err != nil {
				return err
			}
			keys, err := loadKeySet(dataDir)
			if err != nil {
				return err
			}
			now := time.Now()
			ttl := retirementTTL(keys)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tCREATED\tSTATE")
			for _, record := range keys.Keys {
				state := "verifying until " + formatRetirement(keys, record.ID, ttl)
				switch {
				case record.ID == keys.SigningKeyID:
					state = "signing"
				case !now.Before(record.RetiresAt(ttl)):
					state = "retired at " + record.RetiresAt(ttl).UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", record.ID, record.CreatedAt.UTC().Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}
	addFlags(list)

	cmd.AddCommand(rotate, list)
	return cmd
}

func formatRetirement(keys *authority.KeySet, id string, tokenTTL time.Duration) string {
	for _, record := range keys.Keys {
		if record.ID == id {
			return record.RetiresAt(tokenTTL).UTC().Format(time.RFC3339)
		}
	}
	return "-"
}

// loadKeySet reads the key file in dataDir, and names the --data flag when
// there is none.
func loadKeySet(dataDir string) (*authority.KeySet, error) {
	keys, err := authority.LoadKeySet(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingKeyFile(dataDir, err)
	}
	return keys, err
}

// missingKeyFile returns the error for a data folder without a key file.
func missingKeyFile(dataDir string, err error) error {
	return fmt.Errorf("no key file in %q (%w); pass --data with the data folder of the authority", dataDir, err)
}
