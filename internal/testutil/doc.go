// Package testutil is the one place for what tests of several packages
// need: polling until a condition holds (Eventually), loopback addresses
// outside the kernel's ephemeral port range (FreeAddr), and a logger that
// is silent unless asked (Logger). It is for tests and test tooling only;
// nothing in the product imports it.
package testutil
