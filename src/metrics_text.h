// The Prometheus text exposition of /metrics: the server's, hub's, history's, reader's and
// janitor's counters and gauges, each with its HELP and TYPE lines.
#pragma once

#include <string>

namespace mn {

class EventLogReader;
class History;
class Hub;
class Janitor;
class WsServer;

std::string metrics_text(const WsServer& server, const Hub& hub, const History& history,
                         const EventLogReader& reader, const Janitor& janitor);

}  // namespace mn
