package clikit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// AnyArgs is Command.Args for a command that checks its arguments itself.
const AnyArgs = -1

// Command is one command of a program.
type Command struct {
	// Path is the command's words after the program name: "keys sign".
	Path string
	// Group is, for a top-level command, the ID of its group in the
	// overview (a Program.Groups entry); "" puts it under "Other".
	Group   string
	Summary string
	// Usage is the synopsis after the path: "--key ID [--in FILE]".
	Usage string
	// Help is the description and the examples.
	Help string
	// Args is the number of positional arguments: exactly this many, or
	// AnyArgs.
	Args int
	// Flags binds the command's flags to typed fields of its options.
	Flags func(fs *pflag.FlagSet)
	Run   func(ctx context.Context, args []string) error
}

// Group is a heading of the overview.
type Group struct{ ID, Title string }

// Word is a command word that groups others ("keys", "admin").
type Word struct {
	Group   string
	Summary string
	// Flags binds flags that every command under the word accepts, given
	// before or after the subcommand ("admin --server URL audit").
	Flags func(fs *pflag.FlagSet)
}

// IO is where a run reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Program is one binary's command line.
type Program struct {
	Name string
	// Title is the overview's first line; Synopsis follows "usage: NAME".
	Title, Synopsis string
	// Footer is printed after the command list (environment, where
	// secrets come from).
	Footer string
	// ExitCodes are the program's own exit code lines ("  4    …\n")
	// between 3 and 130 in the help.
	ExitCodes string
	Groups    []Group
	Words     map[string]Word
	// Global binds the flags every command accepts.
	Global   func(fs *pflag.FlagSet)
	Commands []*Command
	// JSON reports whether --json was given, for the error answer.
	JSON func() bool
	// Classify describes an error a command returned; nil, or a zero
	// Failure, means exit 1 with code "error".
	Classify func(err error) Failure
}

const otherGroup = "other"

type node struct {
	cmd  *cobra.Command
	spec *Command
	word *Word
	path string
	ran  bool // the command's Run was called
}

// build makes the cobra tree.
func (p *Program) build(io IO) (*cobra.Command, map[*cobra.Command]*node) {
	nodes := map[*cobra.Command]*node{}
	root := &cobra.Command{Use: p.Name, Short: p.Title, SilenceErrors: true, SilenceUsage: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(c, args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			p.overview(io.Stdout, c)
			return Exit(ExitUsage)
		},
	}
	root.SetIn(io.Stdin)
	root.SetOut(io.Stdout)
	root.SetErr(io.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })
	for _, g := range p.Groups {
		root.AddGroup(&cobra.Group{ID: g.ID, Title: g.Title})
	}
	root.AddGroup(&cobra.Group{ID: otherGroup, Title: "Other commands"})
	root.SetCompletionCommandGroupID(otherGroup)
	root.SetHelpCommandGroupID(otherGroup)
	if p.Global != nil {
		p.Global(root.PersistentFlags())
	}
	nodes[root] = &node{cmd: root}
	byPath := map[string]*node{"": nodes[root]}

	var ensure func(path string) *node
	ensure = func(path string) *node {
		if n := byPath[path]; n != nil {
			return n
		}
		parent := ""
		name := path
		if i := strings.LastIndexByte(path, ' '); i >= 0 {
			parent, name = path[:i], path[i+1:]
		}
		pn := ensure(parent)
		n := &node{path: path}
		c := &cobra.Command{Use: name, Annotations: map[string]string{annotation: "word"}}
		// A word's own flags are its Word.Flags; any other flag belongs
		// to the subcommand that was meant, so the mistyped word is what
		// gets reported.
		c.FParseErrWhitelist.UnknownFlags = true
		n.cmd = c
		if w, ok := p.Words[path]; ok {
			n.word = &w
			c.Short = w.Summary
			if w.Flags != nil {
				w.Flags(c.PersistentFlags())
			}
		}
		c.Args = func(c *cobra.Command, args []string) error {
			if n.spec == nil {
				if len(args) > 0 {
					return unknownCommand(c, args[0])
				}
				return nil
			}
			if c.HasSubCommands() && len(args) > 0 && n.spec.Args == 0 {
				return unknownCommand(c, args[0])
			}
			if n.spec.Args >= 0 && len(args) != n.spec.Args {
				return Usagef("%s takes %d argument(s), got %d", path, n.spec.Args, len(args))
			}
			return nil
		}
		c.RunE = func(c *cobra.Command, args []string) error {
			if n.spec == nil {
				var b strings.Builder
				p.listCommands(&b, c)
				return Usagef("%s needs a command:\n%s", path, strings.TrimRight(b.String(), "\n"))
			}
			n.ran = true
			return n.spec.Run(c.Context(), args)
		}
		if parent == "" {
			g := otherGroup
			if n.word != nil && n.word.Group != "" {
				g = n.word.Group
			}
			c.GroupID = g
		}
		pn.cmd.AddCommand(c)
		nodes[c] = n
		byPath[path] = n
		return n
	}
	for _, s := range p.Commands {
		n := ensure(s.Path)
		n.spec = s
		n.cmd.Short = s.Summary
		n.cmd.Annotations[annotation] = "spec"
		n.cmd.FParseErrWhitelist.UnknownFlags = false
		if s.Flags != nil {
			s.Flags(n.cmd.Flags())
		}
		if !strings.Contains(s.Path, " ") {
			n.cmd.GroupID = otherGroup
			if s.Group != "" {
				n.cmd.GroupID = s.Group
			}
		}
	}

	root.AddCommand(p.versionCommand(io))
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Short = "print a shell completion script: bash, zsh, fish or powershell"
		c.Args = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(c, args[0])
			}
			return nil
		}
		c.RunE = func(c *cobra.Command, _ []string) error {
			var b strings.Builder
			p.listCommands(&b, c)
			return Usagef("completion needs a shell:\n%s", strings.TrimRight(b.String(), "\n"))
		}
	}
	root.SetHelpCommand(&cobra.Command{Use: "help", Short: "show the help of a command (enigm help keys sign)",
		GroupID: otherGroup, Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil {
				return &UsageError{err}
			}
			if len(rest) > 0 {
				return unknownCommand(c, rest[0])
			}
			p.help(io.Stdout, c, nodes)
			return nil
		}})
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { p.help(c.OutOrStdout(), c, nodes) })
	var helpFlags func(c *cobra.Command)
	helpFlags = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		if f := c.Flags().Lookup("help"); f != nil {
			f.Usage = "show this help"
		}
		for _, s := range c.Commands() {
			helpFlags(s)
		}
	}
	helpFlags(root)
	return root, nodes
}

// unknownCommand is the usage error for a word that names no command
// under c, with the names it may be a typo of.
func unknownCommand(c *cobra.Command, word string) error {
	c.SuggestionsMinimumDistance = 2
	msg := fmt.Sprintf("unknown command %q for %q", word, c.CommandPath())
	if s := c.SuggestionsFor(word); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return &UsageError{errors.New(msg)}
}

// Run runs the program with args (without the program name) and returns
// the exit code.
func (p *Program) Run(ctx context.Context, io IO, args []string) int {
	root, nodes := p.build(io)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	name := cmd.CommandPath()
	if errors.Is(context.Cause(ctx), ErrInterrupted) {
		fmt.Fprintf(io.Stderr, "%s: interrupted\n", name)
		return ExitInterrupted
	}
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	jsonOut := p.JSON != nil && p.JSON()
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(io.Stderr, "%s: %s\n", name, Message(err))
		// The synopsis for a mistake in the words and flags; a command's
		// own refusal says what to add.
		if n := nodes[cmd]; n != nil && n.spec != nil && !n.ran {
			fmt.Fprintf(io.Stderr, "usage: %s %s\n", name, n.spec.Usage)
		}
		fmt.Fprintf(io.Stderr, "(see `%s --help`)\n", name)
		if jsonOut {
			WriteJSON(io.Stdout, ErrorJSON{Error: ErrorBody{Code: "usage", Message: Message(err)}})
		}
		return ExitUsage
	}
	var f Failure
	if p.Classify != nil {
		f = p.Classify(err)
	}
	if f.Exit == 0 {
		f.Exit = ExitError
	}
	if f.Code == "" {
		f.Code = "error"
	}
	fmt.Fprintf(io.Stderr, "%s: %s\n", name, Message(err))
	if f.Hint != "" {
		fmt.Fprintf(io.Stderr, "hint: %s\n", f.Hint)
	}
	if jsonOut && !f.Quiet {
		WriteJSON(io.Stdout, ErrorJSON{Error: ErrorBody{Code: f.Code, Message: Message(err), Reasons: f.Reasons}})
	}
	return f.Exit
}

// overview is the program's help: every command by group.
func (p *Program) overview(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "%s\n\nusage: %s %s\n", p.Title, p.Name, p.Synopsis)
	groups := append(append([]Group(nil), p.Groups...), Group{otherGroup, "Other commands"})
	for _, g := range groups {
		var b strings.Builder
		for _, c := range root.Commands() {
			if c.GroupID == g.ID && c.IsAvailableCommand() {
				listTree(&b, c)
			}
		}
		if g.ID == otherGroup {
			// cobra leaves its help command out of the lists.
			fmt.Fprintf(&b, "  %-24s %s\n", "help", root.Name()+" help COMMAND is COMMAND --help")
		}
		if b.Len() > 0 {
			fmt.Fprintf(w, "\n%s:\n%s", g.Title, b.String())
		}
	}
	if p.Footer != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(p.Footer, "\n"))
	}
	fmt.Fprintf(w, "\n"+exitCodesHelp, p.ExitCodes)
	fmt.Fprintf(w, "\nRun \"%s COMMAND --help\" for a command's flags and examples.\n", p.Name)
}

// listTree lists c, or for a word the commands under it.
func listTree(w io.Writer, c *cobra.Command) {
	if c.Annotations[annotation] != "word" {
		fmt.Fprintf(w, "  %-24s %s\n", strings.SplitN(c.CommandPath(), " ", 2)[1], c.Short)
	}
	if c.Annotations[annotation] == "" { // the kit's and cobra's own commands
		return
	}
	subs := c.Commands()
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	for _, s := range subs {
		if s.IsAvailableCommand() {
			listTree(w, s)
		}
	}
}

// annotation marks the commands the kit built: "word" for a word that
// only groups commands, "spec" for a Command.
const annotation = "clikit"

func (p *Program) listCommands(w io.Writer, c *cobra.Command) {
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			listTree(w, s)
		}
	}
}

// help prints a command's help.
func (p *Program) help(w io.Writer, c *cobra.Command, nodes map[*cobra.Command]*node) {
	if !c.HasParent() {
		p.overview(w, c)
		return
	}
	n := nodes[c]
	usage, help := "", ""
	switch {
	case n != nil && n.spec != nil:
		usage, help = n.spec.Usage, n.spec.Help
	case n != nil:
		usage = "COMMAND [flags]"
	default: // the kit's and cobra's own commands (version, completion)
		usage, help = strings.TrimPrefix(c.UseLine(), c.CommandPath()), c.Long
		usage = strings.TrimSpace(usage)
	}
	fmt.Fprintf(w, "usage: %s %s\n\n%s\n", c.CommandPath(), usage, c.Short)
	if help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(help, "\n"))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintln(w, "\ncommands:")
		p.listCommands(w, c)
	}
	if f := c.LocalFlags(); f.HasAvailableFlags() {
		fmt.Fprintf(w, "\nflags:\n%s", f.FlagUsages())
	}
	if f := c.InheritedFlags(); f.HasAvailableFlags() {
		fmt.Fprintf(w, "\nglobal flags:\n%s", f.FlagUsages())
	}
}
