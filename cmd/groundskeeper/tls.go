package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

const tlsUsage = `Usage: groundskeeper tls COMMAND [flags]

Commands:
  ca --dir DIR                                      make a CA: DIR/ca.pem and DIR/ca-key.pem
  cert --dir DIR --role ROLE --name NAME [flags]    issue a key and certificate signed by DIR's CA:
                                                    DIR/NAME.pem and DIR/NAME-key.pem

cert flags:
  --role ROLE       admin, worker, operator or reader (the certificate's Organizational Unit)
  --name NAME       the admin's raft id, the worker's id, or a person's or tool's name (its Common Name)
  --host H[,H...]   admins only: DNS names and IP addresses clients dial the admin at;
                    localhost, 127.0.0.1 and ::1 are always included (only admin
                    certificates serve: other roles name no host and only connect)
  --days N          validity in days (default 365; not past the CA's expiry)

Existing files are never overwritten. Keys are written with mode 0600.
`

// runTLS makes a CA or issues a certificate, printing what it wrote to out.
func runTLS(args []string, out io.Writer) error {
	if len(args) == 0 {
		return usagef("tls needs a command: ca or cert (see groundskeeper tls --help)")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(out, tlsUsage)
		return errHelp
	case "ca":
		return tlsCA(args[1:], out)
	case "cert":
		return tlsCert(args[1:], out)
	}
	return usagef("unknown tls command %q (want ca or cert)", args[0])
}

func tlsCA(args []string, out io.Writer) error {
	fs := newFlagSet("tls ca")
	dir := fs.String("dir", "", "directory to write ca.pem and ca-key.pem to (created if missing)")
	if err := parseTLSFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--dir is required: the directory to write ca.pem and ca-key.pem to")
	}
	ca, err := certs.NewCA(*dir)
	if err != nil {
		return certsError(err)
	}
	fmt.Fprintf(out, "wrote %s (the CA certificate %q, valid until %s: every admin, worker and ctl gets it as --tls-ca)\n",
		filepath.Join(*dir, certs.CAFile), ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(out, "wrote %s (the CA's key, mode 0600: keep it secret, only \"groundskeeper tls cert\" needs it)\n",
		filepath.Join(*dir, certs.CAKeyFile))
	fmt.Fprintf(out, "next: groundskeeper tls cert --dir %s --role admin --name ID --host HOST (for each admin), then worker, operator and reader certificates\n", *dir)
	return nil
}

func tlsCert(args []string, out io.Writer) error {
	fs := newFlagSet("tls cert")
	dir := fs.String("dir", "", "directory holding the CA (ca.pem, ca-key.pem); the certificate is written there")
	role := fs.String("role", "", "admin, worker, operator or reader")
	name := fs.String("name", "", "the admin's raft id, the worker's id, or a person's or tool's name")
	hosts := fs.String("host", "", "admins only: comma-separated DNS names and IP addresses the admin is dialed at")
	days := fs.Int("days", 365, "validity in days")
	if err := parseTLSFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return usagef("--dir is required: the directory holding the CA (ca.pem and ca-key.pem)")
	case *role == "":
		return usagef("--role is required: admin, worker, operator or reader")
	case *name == "":
		return usagef("--name is required: the admin's raft id, the worker's id, or a person's or tool's name")
	case *days <= 0:
		return usagef("--days must be a positive number of days, not %d", *days)
	case *days > 100*365:
		return usagef("--days %d is more than a century", *days)
	}
	r, err := certs.ParseRole(*role)
	if err != nil {
		return certsError(err)
	}
	cert, err := certs.Issue(*dir, r, *name, splitList(*hosts), time.Duration(*days)*24*time.Hour)
	if err != nil {
		return certsError(err)
	}
	files := certs.IssuedFiles(*dir, *name)
	sans := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	serves := "hosts " + strings.Join(sans, ",")
	if len(sans) == 0 {
		serves = "connects only (no hosts: only admins serve)"
	}
	fmt.Fprintf(out, "wrote %s and %s (key, mode 0600): role %s, name %s, valid until %s, %s\n",
		files.Cert, files.Key, r, *name, cert.NotAfter.UTC().Format(time.DateOnly), serves)
	fmt.Fprintf(out, "use it with: --tls-ca %s --tls-cert %s --tls-key %s\n", files.CA, files.Cert, files.Key)
	return nil
}

// parseTLSFlags parses a tls command's flags; positional arguments are a
// mistake (every input is a flag).
func parseTLSFlags(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (every input of groundskeeper %s is a flag)", fs.Arg(0), fs.Name())
	}
	return nil
}

// certsError makes the certs package's input errors usage errors (exit 2);
// the others (existing files, a missing CA, I/O) stay failures (exit 1).
func certsError(err error) error {
	if errors.Is(err, certs.ErrInvalid) {
		return usagef("%s", err)
	}
	return err
}
