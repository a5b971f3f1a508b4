#pragma once
// The network value types the runtime's users share with it: IPv4 addresses
// and prefixes, and port mappings ("8080:80/tcp") with their parser. They are
// netns's own (pure values, no kernel access); the layers above the runtime
// (the orchestrator) reach them through this header, so that what they see of
// the layers below is the runtime's facade alone.
#include "netns/ip.hpp"         // IWYU pragma: export
#include "netns/port_spec.hpp"  // IWYU pragma: export
