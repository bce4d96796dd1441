package webpubsub

// Declarations and small C helpers shared by the package. The library and header are found
// through CGO_CFLAGS (-I<repo>/include) and CGO_LDFLAGS (-L<repo>/target/release), which
// scripts/go-tests.sh sets; nothing here names an absolute path.

/*
#cgo LDFLAGS: -lwebpubsub_client
#include "wpsgo.h"
*/
import "C"
