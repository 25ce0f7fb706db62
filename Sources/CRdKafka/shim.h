#ifndef CRDKAFKA_SHIM_H
#define CRDKAFKA_SHIM_H
// The C surface TracedKafka builds on: Debian's librdkafka-dev (pkg-config `rdkafka`).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
