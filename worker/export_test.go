package worker

// SetTestBreak turns a break of testbreak.go on (as GROUNDSKEEPER_TEST_BREAK
// does at start) for an in-process test; the returned func restores it.
func SetTestBreak(name string) (restore func()) {
	old := testBreak
	testBreak = readTestBreak(name)
	return func() { testBreak = old }
}
