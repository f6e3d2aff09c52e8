package groupjoin

import (
	"errors"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cli"
)

// The `caddy group-join` subcommands live in internal/cli; this registers
// them with Caddy's CLI, so every Caddy built with the plugin has them.
func init() {
	tree := cli.Tree()
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  tree.Name,
		Usage: tree.Usage,
		Short: tree.Short,
		Long:  tree.Long,
		CobraFunc: func(cmd *cobra.Command) {
			setupCobra(cmd, tree, nil)
		},
	})
}

// setupCobra makes cmd run `group-join <path…> <args…>` through cli.Run and
// adds the subcommands, so that `caddy help group-join` lists them. Flags
// are parsed by the cli package (cobra's parsing is off), which prints its
// own messages and picks the exit code.
func setupCobra(cmd *cobra.Command, node cli.Command, path []string) {
	cmd.DisableFlagParsing = true
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		code := cli.Run(append(append([]string(nil), path...), args...), os.Stdin, os.Stdout, os.Stderr, os.Getenv)
		return exitWith(cmd, code)
	}
	for _, sub := range node.Subcommands {
		child := &cobra.Command{
			Use:   sub.Name + " " + sub.Usage,
			Short: sub.Short,
			Long:  sub.Long,
		}
		setupCobra(child, sub, append(append([]string(nil), path...), sub.Name))
		cmd.AddCommand(child)
	}
}

// errExit1 makes caddycmd.Main exit with status 1; the cli package has
// already said why.
var errExit1 = errors.New("group-join: exit status 1")

// exitWith turns an exit code into what caddycmd.Main understands: nil is
// 0, a plain error is 1, and for larger codes Caddy's own exit error (only
// reachable through WrapCommandFuncForCobra; with a nil error it logs
// nothing).
func exitWith(cmd *cobra.Command, code int) error {
	switch code {
	case 0:
		return nil
	case 1:
		return errExit1
	}
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(cmd, nil)
}
