package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// The usage texts are written here rather than by the flag package, which
// writes flags as -flag: consentctl writes them as --flag everywhere (both
// forms parse). Help asked for (--help, -h, consentctl help) goes to
// standard output with exit 0; a mistake gets one line of error and one
// pointing at the help, on standard error with exit 2.

// usage writes the help of consentctl: the commands and the global flags.
func usage(w io.Writer, top *flag.FlagSet, cmds []command) {
	fmt.Fprint(w, `Usage: consentctl [flags] COMMAND ARGUMENTS [flags]

consentctl records consent and asks where it stands, through the consent
service of consentd. SUBJECT is the person as you name them (an email, a
customer id); PURPOSE is what the consent is for (marketing_email).

Commands:
`)
	listCommands(w, cmds)
	fmt.Fprint(w, "\nGlobal flags (before or after the command):\n")
	printFlags(w, top, nil)
	fmt.Fprint(w, `
check exits 0 when the consent allows the action, 1 when consent is
required, 2 on any other error. Run consentctl help COMMAND (or
consentctl COMMAND --help) for a command's arguments and own flags.
`)
}

// listCommands writes one line per command: name, arguments, summary.
func listCommands(w io.Writer, cmds []command) {
	width, argsWidth := 8, 8
	for _, c := range cmds {
		width, argsWidth = max(width, len(c.name)), max(argsWidth, len(c.args))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s %-*s %s\n", width, c.name, argsWidth, c.args, c.summary)
	}
}

// commandUsage writes the help of one command: its usage line, summary,
// own flags, then the global flags.
func commandUsage(w io.Writer, fs *flag.FlagSet, cmd *command) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", usageLine(cmd), cmd.summary)
	global := map[string]bool{}
	globalFlags(&globals{}).VisitAll(func(f *flag.Flag) { global[f.Name] = true })
	own := func(f *flag.Flag) bool { return !global[f.Name] }
	if n := countFlags(fs, own); n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs, own)
	}
	fmt.Fprint(w, "\nGlobal flags:\n")
	printFlags(w, fs, func(f *flag.Flag) bool { return global[f.Name] })
}

// usageLine is "consentctl NAME ARGS [flags]".
func usageLine(cmd *command) string {
	return strings.Join(strings.Fields("consentctl "+cmd.name+" "+cmd.args+" [flags]"), " ")
}

// groupUsage writes the help of a group of two-word commands (audit,
// hold, user, admin): the commands in it.
func groupUsage(w io.Writer, cmds []command, group string) {
	fmt.Fprintf(w, "Usage: consentctl %s COMMAND ARGUMENTS [flags]\n\nCommands:\n", group)
	var in []command
	for _, c := range cmds {
		if strings.HasPrefix(c.name, group+" ") {
			in = append(in, c)
		}
	}
	listCommands(w, in)
	fmt.Fprintf(w, "\nRun consentctl help %s COMMAND for a command's arguments and flags.\n", group)
}

func countFlags(fs *flag.FlagSet, keep func(*flag.Flag) bool) int {
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if keep(f) {
			n++
		}
	})
	return n
}

// printFlags writes the flags of fs that keep accepts (all when keep is
// nil), in lexical order, as --name ARG and the usage below, with the
// default when it is not the zero value.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if keep != nil && !keep(f) {
			return
		}
		arg, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			text += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, strings.ReplaceAll(text, "\n", "\n        "))
	})
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--h" || arg == "-help" || arg == "--help"
}

// help is consentctl help [COMMAND]: the help of consentctl, of a
// command or of a group of commands, on standard output.
func help(stdout, stderr io.Writer, g *globals, cmds []command, args []string) int {
	if len(args) == 0 {
		usage(stdout, globalFlags(g), cmds)
		return exitOK
	}
	// The longest command the arguments begin with: help purpose set is
	// the help of purpose.
	for n := min(len(args), 2); n > 0; n-- {
		if cmd := findCommand(cmds, strings.Join(args[:n], " ")); cmd != nil {
			commandUsage(stdout, commandFlags(g, cmd), cmd)
			return exitOK
		}
	}
	if len(args) == 1 && len(subcommands(cmds, args[0])) > 0 {
		groupUsage(stdout, cmds, args[0])
		return exitOK
	}
	return unknownCommand(stderr, cmds, args[0], args[1:])
}

// flagNameInError is the flag name in the errors of the flag package,
// which writes it -name.
var flagNameInError = regexp.MustCompile(`(^|: | for flag | for )-([A-Za-z])`)

// flagError reports a flag the command line got wrong: the flag package's
// error, with the flag written --name, and one line pointing at the help.
// It returns exitError.
func flagError(w io.Writer, err error, helpCmd string) int {
	msg := err.Error()
	if loc := flagNameInError.FindStringSubmatchIndex(msg); loc != nil {
		at := loc[4] - 1                // the dash before the name
		msg = msg[:at] + "-" + msg[at:] // the first name only: not a value's
	}
	fmt.Fprintf(w, "consentctl: %s\nRun %s for the flags.\n", msg, helpCmd)
	return exitError
}

// unknownCommand reports a command name that is none of cmds, with the
// nearest one when it is close (a typo), and returns exitError. rest is
// what followed the name on the command line.
func unknownCommand(w io.Writer, cmds []command, name string, rest []string) int {
	if sub := subcommands(cmds, name); len(sub) > 0 {
		if len(rest) == 0 {
			fmt.Fprintf(w, "consentctl: %s needs one of: %s\nRun consentctl help %s for what each does.\n", name, strings.Join(sub, ", "), name)
			return exitError
		}
		group := name
		name += " " + rest[0]
		fmt.Fprintf(w, "consentctl: unknown command %q: %s needs one of: %s", name, group, strings.Join(sub, ", "))
	} else {
		fmt.Fprintf(w, "consentctl: unknown command %q", name)
	}
	if near := nearest(cmds, name); near != "" {
		fmt.Fprintf(w, "; did you mean %q?", near)
	}
	fmt.Fprintln(w, "\nRun consentctl --help for the commands.")
	return exitError
}

// nearest returns the command name (or first word of one: audit) that
// typed is short for (the only one it begins), or else the closest to
// typed if it is close enough to be a typo: at most two edits (a swap of
// neighbours is one) and fewer edits than typed has letters. Else it
// returns "".
func nearest(cmds []command, typed string) string {
	var names []string
	seen := map[string]bool{}
	for _, c := range append(cmds, command{name: "help"}) {
		for _, n := range []string{strings.Fields(c.name)[0], c.name} {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	best, bestDist := "", 3
	var prefixed []string
	for _, n := range names {
		if d := editDistance(typed, n); d < bestDist && d < len(typed) {
			best, bestDist = n, d
		}
		if strings.HasPrefix(n, typed) && !strings.Contains(n, " ") {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// editDistance is the number of single-byte insertions, deletions,
// substitutions and swaps of neighbours that turn a into b (optimal string
// alignment distance).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
