// What the node agent's API serves (messages.hpp under /v1, Prometheus text at
// /metrics). Each answer is made on the loop's thread from the store and the
// engine's records; see agent_impl.hpp.
#include <chrono>
#include <cstdio>

#include "orchestrator/node/agent_impl.hpp"
#include "sys/json.hpp"
#include "sys/log.hpp"

namespace hull::orchestrator {

using json::Value;

namespace {

/// An error answer of the API.
ApiReply apiError(int code, const std::string& msg) { return {code, encode(ErrorReply{msg}), "application/json"}; }

constexpr size_t kDescribeEvents = 20;  // the last ones of a service that `hull describe` shows

Event eventOf(const EventRow& r) { return {r.id, r.timeMs, r.kind, r.service, r.container, r.message}; }

}  // namespace

void AgentImpl::handle(const std::string& method, const std::string& target, const std::string& body,
                       ApiServer::Respond respond) {
    // Joined to a master, the master says what runs here: the local API reads.
    if (o_.join && method != "GET")
        return respond(apiError(409, "this node is joined to the master at " + o_.join->masterUrl +
                                         ": send changes there (hull --config admin.conf ...)"));
    if (method == "POST" && target == "/v1/services") return apply(body, std::move(respond));
    respond(answer(method, target, body));
}

/// Every request but apply: answered at once.
ApiReply AgentImpl::answer(const std::string& method, const std::string& target, const std::string& body) {
    const std::string services = "/v1/services";
    if (method == "GET" && target == services) {
        auto rows = store_.listServices();
        if (!rows) return apiError(500, rows.error().message());
        ServiceList list;
        std::map<std::string, int64_t> ready;
        for (const auto& c : containers())
            if (c.ready) ++ready[c.service];
        // One whose spec cannot be read is listed all the same, as far as it
        // can be read (its error is in its events, and `hull describe`).
        for (const auto& r : *rows) {
            auto spec = serviceFromJson(r.spec);
            ServiceEntry e{r.name, r.generation, spec ? std::move(*spec) : serviceFromJsonLenient(r.spec, r.name)};
            e.desired = r.slots ? int64_t(r.slots->size()) : e.spec.replicas;
            e.ready = ready[r.name];
            list.services.push_back(std::move(e));
        }
        return {200, encode(list)};
    }
    if (target.rfind(services + "/", 0) == 0) {
        std::string rest = target.substr(services.size() + 1);
        std::string name = rest.substr(0, rest.find('/'));
        if (method == "GET" && rest == name) return describe(name);
        if (method == "DELETE" && rest == name) {
            auto gone = store_.deleteService(name);
            if (!gone) return apiError(500, gone.error().message());
            if (!*gone) return apiError(404, "no service \"" + name + "\"");
            (void)store_.addEvent({0, nowMs(), "delete", name, "", "deleted"});
            return {200, encode(DeleteReply{name})};
        }
        if (method == "POST" && rest == name + "/scale") return scale(name, body);
    }
    if (method == "GET" && target == "/v1/containers") return {200, encode(ContainerList{containers()})};
    if (method == "GET" && target == "/metrics") return {200, metrics(), "text/plain; version=0.0.4"};
    if (method == "GET" && target.rfind("/v1/events", 0) == 0) {
        int64_t since = 0;
        if (auto q = target.find("since="); q != std::string::npos) since = std::atoll(target.c_str() + q + 6);
        auto evs = store_.events(since);
        if (!evs) return apiError(500, evs.error().message());
        EventList list;
        for (const auto& e : *evs) list.events.push_back(eventOf(e));
        return {200, encode(list)};
    }
    return apiError(404, "no such endpoint: " + method + " " + target);
}

/// POST /v1/services: `hull apply -f FILE`.
void AgentImpl::apply(const std::string& body, ApiServer::Respond respond) {
    auto req = decode<ApplyRequest>(body);
    if (!req) return respond(apiError(400, req.error().message()));
    std::string source = req->source.empty() ? "<input>" : req->source;
    auto svc = parseService(req->text, source);
    if (!svc) return respond(apiError(400, svc.error().message()));
    // A master's field, refused rather than ignored: a standalone agent places nothing.
    if (!(svc->placement == Placement{}))
        return respond(apiError(400, source + ": placement: only a cluster master places replicas; this agent is "
                                              "standalone (apply it to a master: hull --config admin.conf apply)"));
    // Likewise a master's rollouts and failover: this agent replaces its own
    // replicas one at a time, start-first, and has no node to fail over from.
    if (!(svc->update == UpdateConfig{}))
        return respond(apiError(400, source + ": update: only a cluster master runs rolling updates with these settings; "
                                              "this agent is standalone (it replaces replicas one at a time, start-first)"));
    if (svc->publishMode != Service::PublishMode::Ingress)
        return respond(apiError(400, source + ": publishMode: only a cluster master publishes ports on other nodes; this "
                                              "agent is standalone (its ports lead to its own replicas)"));
    if (!svc->networks.empty())
        return respond(apiError(400, source + ": networks: only a cluster master keeps networks apart; this agent is "
                                              "standalone (its services' containers share its bridge)"));
    if (svc->autoscale)
        return respond(apiError(400, source + ": autoscale: only a cluster master scales services with demand; this agent "
                                              "is standalone (hull scale sets its replicas)"));
    if (!(svc->failover == Failover{}))
        return respond(apiError(400, source + ": failover: only a cluster master moves replicas off a lost node; this "
                                              "agent is standalone"));
    // An image the node does not have and cannot pull would only make every
    // start fail: refused, before anything is stored. A pull may take long:
    // the answer waits for it, the loop does not.
    puller_.ensure(svc->image, [this, svc = *svc, source, respond = std::move(respond)](const Result<void>& img) {
        if (!img) return respond(apiError(400, source + ": image: " + img.error().message()));
        respond(store(svc, source));
    });
}

/// An applied service whose image is there: stored, unless its host ports clash.
ApiReply AgentImpl::store(const Service& svc, const std::string& source) {
    // Two services cannot share a host port: refused here, before anything is stored.
    if (auto rows = store_.listServices())
        for (const auto& r : *rows) {
            if (r.name == svc.name) continue;
            auto other = serviceFromJson(r.spec);
            if (!other) continue;
            if (auto clash = portClash(svc, *other); !clash.empty())
                return apiError(400, source + ": ports: " + clash + " is published by service \"" + r.name + "\" already");
        }
    auto gen = storeService(svc);
    if (!gen) return apiError(500, gen.error().message());
    (void)store_.addEvent({0, nowMs(), "apply", svc.name, "", "generation " + std::to_string(*gen)});
    return {200, encode(ApplyReply{svc.name, *gen})};
}

/// POST /v1/services/NAME/scale: `hull scale NAME N`. Only the number of
/// replicas changes: the generation stays, and with it the running containers.
ApiReply AgentImpl::scale(const std::string& name, const std::string& body) {
    auto req = decode<ScaleRequest>(body);
    if (!req) return apiError(400, req.error().message());
    if (req->replicas < 0 || req->replicas > 1000) return apiError(400, "replicas: expected a number from 0 to 1000");
    auto row = store_.getService(name);
    if (!row) return apiError(500, row.error().message());
    if (!*row) return apiError(404, "no service \"" + name + "\"");
    auto svc = serviceFromJson((*row)->spec);
    if (!svc)
        return apiError(500, "service " + name + ": stored spec unreadable: " + svc.error().message() +
                                 " (apply its file to replace it)");
    svc->replicas = int(req->replicas);
    auto gen = storeService(*svc);
    if (!gen) return apiError(500, gen.error().message());
    (void)store_.addEvent({0, nowMs(), "scale", name, "", "replicas " + std::to_string(req->replicas)});
    return {200, encode(ScaleReply{name, *gen, req->replicas})};
}

Result<int64_t> AgentImpl::storeService(const Service& s) {
    auto row = TRY(store_.getService(s.name));
    auto g = Store::Generation::Bump;
    std::optional<std::vector<int>> slots;
    if (row) {
        slots = row->slots;
        // Compared as services, not as text: the same spec in an older hull's
        // form (fewer fields, no version) is the same template too.
        if (auto old = serviceFromJson(row->spec); old && sameTemplate(*old, s)) g = Store::Generation::Keep;
    }
    return store_.putService(s.name, serviceJson(s), g, slots);
}

/// GET /v1/services/NAME, `hull describe`: the spec, its containers and its
/// recent events in one message. A spec that cannot be read is shown as far as
/// it can be; its events say why.
ApiReply AgentImpl::describe(const std::string& name) {
    auto row = store_.getService(name);
    if (!row) return apiError(500, row.error().message());
    if (!*row) return apiError(404, "no service \"" + name + "\" (hull get services lists them)");
    auto spec = serviceFromJson((*row)->spec);
    DescribeReply d;
    d.name = name;
    d.generation = (*row)->generation;
    d.updated = (*row)->updatedMs;
    d.spec = spec ? std::move(*spec) : serviceFromJsonLenient((*row)->spec, name);
    d.containers = containers(name);
    d.replicas.desired = (*row)->slots ? int64_t((*row)->slots->size()) : d.spec.replicas;
    for (const auto& c : d.containers) d.replicas.ready += c.ready;
    if (auto rows = store_.serviceEvents(name, kDescribeEvents))
        for (const auto& e : *rows) d.events.push_back(eventOf(e));
    return {200, encode(d)};
}

/// Ready as the loop last saw it; a container not probed yet is ready only
/// when its service declares nothing that has to say so first.
bool AgentImpl::readyOf(const runtime::ContainerInfo& c) {
    if (c.status != "running" || isStopping(c.id)) return false;
    if (const ContainerProbes* p = prober_.probes(c.id)) return p->ready();
    auto s = specs_.find(label(c, "hull.service"));
    if (s == specs_.end()) return true;
    const Service& spec = specFor(s->second, labelInt(c, "hull.generation"));
    return !spec.readiness && !spec.startup;
}

/// The containers of declared services (of SERVICE only, when given).
std::vector<ContainerEntry> AgentImpl::containers(const std::string& service) {
    std::vector<ContainerEntry> out;
    auto list = engine_.list(true);
    if (!list) return out;
    for (const auto& c : *list) {
        std::string svc = label(c, "hull.service");
        if (svc.empty() || (!service.empty() && svc != service)) continue;
        ContainerEntry e;
        e.id = c.id;
        e.name = c.name;
        e.service = svc;
        e.slot = int(labelInt(c, "hull.slot"));
        e.generation = labelInt(c, "hull.generation");
        e.incarnation = labelInt(c, "hull.incarnation");
        e.restarts = int(labelInt(c, "hull.restarts"));
        // "stopping": on its way out in the background (grace period), no longer counted.
        e.status = c.status == "running" && isStopping(c.id) ? std::string("stopping") : c.status;
        e.exitCode = c.exitCode;
        e.ready = readyOf(c);
        e.ip = c.ip;
        e.started = labelInt(c, "hull.started");
        out.push_back(std::move(e));
    }
    return out;
}

std::string AgentImpl::usage() {
    Value containers = Value::array();
    auto list = engine_.list(true);
    if (list)
        for (const auto& c : *list) {
            std::string svc = label(c, "hull.service");
            if (svc.empty() || c.status != "running") continue;
            auto st = engine_.stats(c.id);
            auto v = st ? Value::parse(*st) : Result<Value>(fail(Error::plain(EIO, "")));
            if (!v) continue;
            uint64_t cpuNs = 0, mem = 0;
            if (const Value* cpu = v->find("cpu"))
                if (const Value* u = cpu->find("usage"))
                    if (const Value* t = u->find("total")) t->toUint64(cpuNs);
            if (const Value* m = v->find("memory"))
                if (const Value* u = m->find("usage"))
                    if (const Value* b = u->find("usage")) b->toUint64(mem);
            Value one = Value::object();
            one.set("id", c.id);
            one.set("service", svc);
            one.set("cpuNs", int64_t(cpuNs));
            one.set("memory", int64_t(mem));
            containers.push(std::move(one));
        }
    // Connections: each service's published ports here and its address.
    std::vector<std::string> names;
    std::vector<runtime::Engine::Published> groups;
    for (const auto& [name, p] : published_) {
        names.push_back(name);
        groups.push_back({p.ports, endpoints_ && endpoints_->count(name) ? endpoints_->at(name).vip : ""});
    }
    if (endpoints_)
        for (const auto& [name, ep] : *endpoints_)
            if (!published_.count(name) && !ep.vip.empty()) {
                names.push_back(name);
                groups.push_back({{}, ep.vip});
            }
    Value services = Value::object();
    if (auto counts = engine_.newConnections(groups)) {
        for (size_t i = 0; i < names.size(); ++i) {
            Value s = Value::object();
            s.set("connections", int64_t((*counts)[i]));
            services.set(names[i], std::move(s));
        }
    } else {
        log::debugf("node: connection counters: %s", counts.error().message().c_str());
    }
    // HTTP probes' latency, summed so far (the master takes the mean of each second's).
    for (const auto& [name, latency] : prober_.httpLatency()) {
        Value s = services.find(name) ? *services.find(name) : Value::object();
        s.set("probeSeconds", latency.first);
        s.set("probes", int64_t(latency.second));
        services.set(name, std::move(s));
    }
    Value m = Value::object();
    m.set("type", "usage");
    // When it was read, on this host's monotonic clock: rates come from these
    // times, not from when the messages arrive (which a busy link or master delays).
    m.set("atMs", int64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count()));
    m.set("containers", std::move(containers));
    m.set("services", std::move(services));
    return m.dump();
}

/// Prometheus text format (version 0.0.4).
std::string AgentImpl::metrics() {
    std::string out;
    std::map<std::string, int> byState;
    std::map<std::string, int64_t> restarts;
    std::string perContainer;
    auto list = engine_.list(true);
    if (list)
        for (const auto& c : *list) {
            std::string svc = label(c, "hull.service");
            if (svc.empty()) continue;
            ++byState[c.status];
            restarts[svc] += labelInt(c, "hull.restarts");
            if (c.status != "running") continue;
            auto st = engine_.stats(c.id);
            auto v = st ? Value::parse(*st) : Result<Value>(fail(Error::plain(EIO, "")));
            if (!v) continue;
            uint64_t cpuNs = 0, mem = 0;
            if (const Value* cpu = v->find("cpu"))
                if (const Value* u = cpu->find("usage"))
                    if (const Value* t = u->find("total")) t->toUint64(cpuNs);
            if (const Value* m = v->find("memory"))
                if (const Value* u = m->find("usage"))
                    if (const Value* x = u->find("usage")) x->toUint64(mem);
            std::string lbl = "{service=\"" + svc + "\",container=\"" + c.name + "\"}";
            char line[256];
            std::snprintf(line, sizeof line, "hull_container_cpu_seconds_total%s %.6f\n", lbl.c_str(), double(cpuNs) / 1e9);
            perContainer += line;
            perContainer += "hull_container_memory_bytes" + lbl + " " + std::to_string(mem) + "\n";
        }
    out += "# HELP hull_containers Containers of declared services, by state.\n# TYPE hull_containers gauge\n";
    for (const char* st : {"running", "paused", "created", "exited"})
        out += "hull_containers{state=\"" + std::string(st) + "\"} " + std::to_string(byState[st]) + "\n";
    out += "# HELP hull_restarts Restarts of the containers now present, per service.\n# TYPE hull_restarts gauge\n";
    for (const auto& [svc, n] : restarts) out += "hull_restarts{service=\"" + svc + "\"} " + std::to_string(n) + "\n";
    out += prober_.metrics();
    out += "# HELP hull_container_cpu_seconds_total CPU time, from the cgroup.\n# TYPE hull_container_cpu_seconds_total counter\n";
    out += "# HELP hull_container_memory_bytes Memory in use, from the cgroup.\n# TYPE hull_container_memory_bytes gauge\n";
    out += perContainer;
    out += "# HELP hull_service_port_backends Containers a service's host ports lead to (-1: not published, see events).\n"
           "# TYPE hull_service_port_backends gauge\n";
    for (const auto& [svc, p] : published_)
        out += "hull_service_port_backends{service=\"" + svc + "\"} " +
               (p.error.empty() ? std::to_string(p.backends.size()) : std::string("-1")) + "\n";
    return out;
}

}  // namespace hull::orchestrator
