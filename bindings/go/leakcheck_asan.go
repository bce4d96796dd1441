//go:build asan

package webpubsub

// Built with `go test -asan`: LeakSanitizer can check the C heap on demand (Go exits without
// running libc's exit handlers, so the usual check at exit never runs).

/*
#include <stdlib.h>
int __lsan_do_recoverable_leak_check(void);
static void wpsgo_leak_for_test(void) { volatile void *p = malloc(77); p = 0; (void)p; }
*/
import "C"

// cLeakCheck runs LeakSanitizer over the C heap: true when it found leaks (it prints them).
func cLeakCheck() (checked, leaked bool) {
	return true, C.__lsan_do_recoverable_leak_check() != 0
}

// leakForTest leaks one C allocation, to show that cLeakCheck sees leaks.
func leakForTest() { C.wpsgo_leak_for_test() }
