package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/audit"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
)

// exitProblems is what audit verify and audit verify-receipt exit with
// when the ledger or the receipt fails a check.
const exitProblems = 1

// auditCommands are the auditor's commands: consentctl audit export,
// verify, keygen and verify-receipt, and consentctl receipt.
func auditCommands() []command {
	return []command{
		auditExportCommand(),
		auditVerifyCommand(),
		auditKeygenCommand(),
		auditVerifyReceiptCommand(),
		receiptCommand(),
	}
}

// keyFiles is a repeatable --public-key flag.
type keyFiles []string

func (k *keyFiles) String() string { return strings.Join(*k, ",") }

func (k *keyFiles) Set(s string) error {
	*k = append(*k, s)
	return nil
}

// keyring loads the public keys.
func (k keyFiles) keyring() (audit.Keyring, error) {
	var keys []ed25519.PublicKey
	for _, path := range k {
		pub, err := audit.LoadPublicKey(path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, pub)
	}
	return audit.NewKeyring(keys...), nil
}

func auditExportCommand() command {
	var (
		opts         audit.ExportOptions
		since, until timeFlag
		out, stream  string
	)
	return command{
		name: "audit export", args: "", untimed: true, nargs: [2]int{0, 0},
		summary: "write the events, with their seqs, as JSON lines or CSV",
		flags: func(fs *flag.FlagSet) {
			fs.Var(&since, "since", "only events recorded at or after `TIME` (RFC 3339)")
			fs.Var(&until, "until", "only events recorded before `TIME` (RFC 3339)")
			fs.StringVar(&opts.Purpose, "purpose", "", "only the consents to `PURPOSE` (--tenant narrows to one tenant; default all tenants)")
			fs.StringVar(&opts.Format, "format", audit.FormatJSONL, "`FORMAT` of the output: jsonl, csv, or raw (every message of the stream with its exact bytes, to recompute the chain offline)")
			fs.StringVar(&out, "out", "", "write to `FILE` (written whole or not at all) instead of standard output")
			fs.StringVar(&stream, "stream", wire.DefaultStream, "`NAME` of the stream consentd keeps the audit trail in")
		},
		do: func(ctx context.Context, e *env, _ []string) int {
			opts.Stream, opts.Tenant, opts.Since, opts.Until = stream, e.g.tenant, since.t, until.t
			// The service opens the consumer: clients have no JetStream
			// API of their own.
			q := wire.AuditOpenRequest{Tenant: opts.Tenant, Purpose: opts.Purpose}
			if opts.Format == audit.FormatRaw {
				q = wire.AuditOpenRequest{Every: true}
			}
			var err error
			if opts.Source, err = e.client.AuditSource(ctx, q); err != nil {
				return e.fail(err)
			}
			opts.Open = e.client.OpenSealed(ctx)
			bar := newProgressBar(e.stderr, "export")
			opts.Progress = bar.update
			var st audit.ExportStats
			if out == "" {
				st, err = audit.Export(ctx, nil, e.stdout, opts)
			} else {
				err = writeWhole(out, func(f *os.File) error {
					st, err = audit.Export(ctx, nil, f, opts)
					return err
				})
			}
			bar.finish()
			if err != nil {
				return e.fail(err)
			}
			what := "events"
			if opts.Format == audit.FormatRaw {
				what = "messages"
			}
			fmt.Fprintf(e.stderr, "Exported %d %s (seq %d to %d)", st.Events, what, st.FirstSeq, st.LastSeq)
			if st.Unreadable > 0 {
				fmt.Fprintf(e.stderr, " and %d unreadable messages (run consentctl audit verify)", st.Unreadable)
			}
			if out != "" {
				fmt.Fprintf(e.stderr, " to %s", out)
			}
			fmt.Fprintln(e.stderr, ".")
			return exitOK
		},
	}
}

// writeWhole writes a file through fn: into a temporary file beside it,
// renamed into place only when fn succeeds.
func writeWhole(path string, fn func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	err = fn(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

func auditVerifyCommand() command {
	var (
		keys   keyFiles
		anchor string
		stream string
		noLive bool
	)
	return command{
		name: "audit verify", args: "", untimed: true, nargs: [2]int{0, 0},
		summary: "replay the stream and check every hash, link, sequence, checkpoint and the live index",
		flags: func(fs *flag.FlagSet) {
			fs.Var(&keys, "public-key", "check checkpoint signatures with the public key in `FILE` (repeat for several keys)")
			fs.StringVar(&anchor, "anchor", "", "require the chain to be `SEQ:CHAIN` at SEQ, as an earlier report printed it")
			fs.StringVar(&stream, "stream", wire.DefaultStream, "`NAME` of the stream consentd keeps the audit trail in")
			fs.BoolVar(&noLive, "no-live", false, "do not compare with the live index (by default it is compared when consentd answers)")
		},
		do: func(ctx context.Context, e *env, _ []string) int {
			opts := audit.VerifyOptions{Stream: stream}
			if len(keys) > 0 {
				ring, err := keys.keyring()
				if err != nil {
					return e.fail(err)
				}
				opts.Keys = ring
			}
			if anchor != "" {
				a, err := audit.ParseAnchor(anchor)
				if err != nil {
					return e.fail(err)
				}
				opts.Anchor = a
			}
			if !noLive {
				opts.Live = func(ctx context.Context) (audit.IndexDigest, error) {
					ctx, cancel := context.WithTimeout(ctx, max(e.g.timeout, 30*time.Second))
					defer cancel()
					d, err := e.client.IndexDigest(ctx)
					if errors.Is(err, nats.ErrNoResponders) {
						return d, errors.New("no consent service answered; verifying the stream alone")
					}
					return d, err
				}
			}
			source, err := e.client.AuditSource(ctx, wire.AuditOpenRequest{Every: true})
			if err != nil {
				return e.fail(err)
			}
			opts.Source = source
			bar := newProgressBar(e.stderr, "verify")
			opts.Progress = bar.update
			report, err := audit.Verify(ctx, nil, opts)
			bar.finish()
			if err != nil {
				return e.fail(err)
			}
			if e.g.json {
				e.printJSON(report)
			} else if err := report.WriteText(e.stdout); err != nil {
				return e.fail(err)
			}
			if !report.OK() {
				return exitProblems
			}
			return exitOK
		},
	}
}

func auditKeygenCommand() command {
	return command{
		name: "audit keygen", args: "[NAME]", offline: true, nargs: [2]int{0, 1},
		summary: "write a new ed25519 key pair, NAME.key (private, mode 0600) and NAME.pub",
		do: func(_ context.Context, e *env, args []string) int {
			name := "consent-signing"
			if len(args) == 1 {
				name = args[0]
			}
			priv, pub := name+".key", name+".pub"
			id, err := audit.GenerateKeyFiles(priv, pub)
			if err != nil {
				return e.fail(err)
			}
			fmt.Fprintf(e.stdout, "Wrote the private key to %s (mode 0600) and the public key to %s; key id %s.\n", priv, pub, id)
			fmt.Fprintf(e.stdout, "Sign with:   consentd --signing-key %s   (or CONSENTD_SIGNING_KEY)\n", priv)
			fmt.Fprintf(e.stdout, "Verify with: consentctl audit verify --public-key %s\n", pub)
			fmt.Fprintln(e.stdout, "Keep the private key secret and backed up; give the public key to auditors.")
			return exitOK
		},
	}
}

func auditVerifyReceiptCommand() command {
	var keys keyFiles
	return command{
		name: "audit verify-receipt", args: "FILE", offline: true, nargs: [2]int{1, 1},
		summary: "check a receipt's signature and that it holds together, with the public key alone",
		flags: func(fs *flag.FlagSet) {
			fs.Var(&keys, "public-key", "the public key `FILE` of the ledger that signed it (repeat for several keys)")
		},
		do: func(_ context.Context, e *env, args []string) int {
			if len(keys) == 0 {
				fmt.Fprintln(e.stderr, "consentctl: audit verify-receipt needs --public-key FILE: the key of the ledger that signed the receipt")
				return exitError
			}
			ring, err := keys.keyring()
			if err != nil {
				return e.fail(err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return e.fail(err)
			}
			var sr audit.SignedReceipt
			if err := json.Unmarshal(data, &sr); err != nil {
				return e.fail(fmt.Errorf("%s is not a receipt (consentctl receipt --out FILE writes one): %w", args[0], err))
			}
			r, err := audit.VerifyReceipt(&sr, ring)
			if err != nil {
				fmt.Fprintf(e.stdout, "NOT VALID: %v\n", err)
				return exitProblems
			}
			fmt.Fprint(e.stdout, r.Text())
			fmt.Fprintf(e.stdout, "\nVALID: signed by key %s; every hash and link checks out and the status follows from the history.\n", r.KeyID)
			return exitOK
		},
	}
}

func receiptCommand() command {
	var out string
	return command{
		name: "receipt", args: "SUBJECT PURPOSE", nargs: [2]int{2, 2},
		summary: "get a signed receipt of one consent: its status and history with seqs and hashes",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&out, "out", "", "also save the signed receipt (JSON) to `FILE`, to check later with audit verify-receipt")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			q := wire.ReceiptQuery{Tenant: e.g.tenant, SubjectID: args[0], Purpose: args[1]}
			sr, err := e.client.Receipt(ctx, q)
			if err != nil {
				return e.fail(err)
			}
			if out != "" {
				data, err := json.MarshalIndent(sr, "", "  ")
				if err == nil {
					err = writeWhole(out, func(f *os.File) error {
						_, err := f.Write(append(data, '\n'))
						return err
					})
				}
				if err != nil {
					return e.fail(err)
				}
			}
			if e.g.json {
				return e.printJSON(sr)
			}
			fmt.Fprint(e.stdout, sr.Text)
			if out != "" {
				fmt.Fprintf(e.stdout, "\nSaved the signed receipt to %s.\n", out)
			}
			return exitOK
		},
	}
}

// statusAt answers status --at: the status as recorded (or as occurred)
// at a past time.
func statusAt(ctx context.Context, e *env, q wire.StatusQuery, at time.Time, by string) int {
	st, err := e.client.StatusAt(ctx, wire.StatusAtQuery{Tenant: q.Tenant, SubjectID: q.SubjectID, Purpose: q.Purpose, At: at, By: wire.TimeBasis(by)})
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		return e.printJSON(st)
	}
	printStatuses(e.stdout, []events.Status{st.Status})
	basis := "as the ledger had recorded it"
	if st.By == wire.ByOccurred {
		basis = "as it had happened, by occurred_at, as the ledger knows it now"
	}
	fmt.Fprintf(e.stdout, "\nAt %s, %s (%d events counted).\n", at.UTC().Format(time.RFC3339), basis, st.Events)
	return exitOK
}
