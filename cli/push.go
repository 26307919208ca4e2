package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/registry/credentials"
)

func pushCmd(o *options) *cobra.Command {
	var ro remoteOptions
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] IMAGE [DESTINATION]",
		Short: "Push an image to a registry",
		Long: `Push the image IMAGE (a name or ID) to the registry its name, or
DESTINATION, names: NAME:TAG pushes by tag, NAME@DIGEST by digest (the
image's manifest digest). Blobs the repository has are skipped, blobs another
repository of the registry has (where the image also has a name) are
mounted, and the manifest goes last, unchanged.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dstName := args[0]
			if len(args) == 2 {
				dstName = args[1]
			}
			dst, err := reference.Parse(dstName)
			if err != nil {
				return err
			}
			cfg, err := ro.hostsConfig()
			if err != nil {
				return err
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			out := ro.renderer(cmd.ErrOrStderr())
			defer out.Close()
			repo, err := ro.client(cfg, out).Repository(dst, true)
			if err != nil {
				return err
			}
			desc, err := s.Push(cmd.Context(), repo, args[0], dst, engine.PushOptions{Progress: out})
			if err != nil {
				return err
			}
			out.Close()
			fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
			return nil
		},
	}
	ro.addFlags(cmd, true)
	return cmd
}

func loginCmd() *cobra.Command {
	var ro remoteOptions
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Long: `Log in to a registry (docker.io by default): the user name and password are
checked against the registry, then kept where docker keeps them
(~/.docker/config.json, or the credential helper it names), so docker's
logins work in berth and berth's in docker.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := reference.DefaultDomain
			if len(args) == 1 {
				server = credentials.NormalizeHost(args[0])
			}
			if password != "" && passwordStdin {
				return errors.New("--password and --password-stdin are mutually exclusive")
			}
			in := bufio.NewReader(cmd.InOrStdin())
			if passwordStdin {
				if user == "" {
					return errors.New("--password-stdin needs --username")
				}
				b, err := io.ReadAll(in)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
				if password == "" {
					return errors.New("--password-stdin: no password on stdin")
				}
			}
			if user == "" {
				fmt.Fprint(cmd.ErrOrStderr(), "Username: ")
				line, err := in.ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no user name given (-u NAME)")
				}
				user = strings.TrimSpace(line)
			}
			if password == "" {
				fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
				if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					b, err := term.ReadPassword(int(f.Fd()))
					fmt.Fprintln(cmd.ErrOrStderr())
					if err != nil {
						return err
					}
					password = string(b)
				} else {
					line, _ := in.ReadString('\n')
					password = strings.TrimRight(line, "\r\n")
				}
			}
			if user == "" || password == "" {
				return errors.New("a user name and a password are needed")
			}
			cfg, err := ro.hostsConfig()
			if err != nil {
				return err
			}
			cred := registry.Credential{Username: user, Password: password}
			c := registry.NewClient(registry.Options{
				Endpoints: ro.endpoints(cfg),
				Credentials: func(context.Context, string) (registry.Credential, error) {
					return cred, nil
				},
				Retries: -1,
			})
			if err := c.Ping(cmd.Context(), server); err != nil {
				return fmt.Errorf("login to %s: %w", server, err)
			}
			store := ro.credentials()
			if err := store.Put(cmd.Context(), server, cred); err != nil {
				return fmt.Errorf("login to %s: %w", server, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
			return nil
		},
	}
	ro.addFlags(cmd, false)
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func logoutCmd() *cobra.Command {
	var ro remoteOptions
	cmd := &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := reference.DefaultDomain
			if len(args) == 1 {
				server = credentials.NormalizeHost(args[0])
			}
			if err := ro.credentials().Erase(cmd.Context(), server); err != nil {
				return fmt.Errorf("logout from %s: %w", server, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removing login credentials for %s\n", server)
			return nil
		},
	}
	cmd.Flags().StringVar(&ro.authfile, "authfile", "", "registry logins file (default $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	return cmd
}
