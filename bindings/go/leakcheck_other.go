//go:build !asan

package webpubsub

// Without -asan there is no C leak checker.
func cLeakCheck() (checked, leaked bool) { return false, false }

func leakForTest() {}
