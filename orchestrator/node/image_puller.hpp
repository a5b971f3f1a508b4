#pragma once
// Images made sure of (pulled when missing) in threads of their own: a pull
// from a registry can take minutes, and neither the agent's loop nor its API
// may wait for one. Results come back on the io_context's thread.
#include <boost/asio/io_context.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sys/error.hpp"

namespace hull::orchestrator {

class ImagePuller {
public:
    /// Pulls go into the engine's store under STATE_DIR (RUN_DIR: its runtime
    /// state), from INSECURE_REGISTRIES (HOST:PORT) over plain HTTP.
    ImagePuller(boost::asio::io_context& ioc, std::string stateDir, std::string runDir,
                std::vector<std::string> insecureRegistries);
    /// Results still to come are dropped (their threads finish on their own).
    ~ImagePuller();
    ImagePuller(const ImagePuller&) = delete;
    ImagePuller& operator=(const ImagePuller&) = delete;

    using Done = std::function<void(const Result<void>&)>;
    /// Make sure IMAGE is in the store, pulling it if missing; DONE runs on the
    /// io_context, never from within this call. One pull per image at a time:
    /// a second caller joins the one under way.
    void ensure(const std::string& image, Done done);
    /// IMAGE was made sure of (since this puller began).
    bool known(const std::string& image) const { return known_.count(image) > 0; }
    /// The error of IMAGE's last pull, if it failed and no one has taken it yet.
    std::optional<Error> takeFailure(const std::string& image);
    /// A pull of IMAGE is under way.
    bool pulling(const std::string& image) const { return waiting_.count(image) > 0; }

private:
    struct Shared;
    void finished(const std::string& image, const Result<void>& r);

    std::shared_ptr<Shared> shared_;  // with the threads: where to post, while there is somewhere
    std::string stateDir_, runDir_;
    std::vector<std::string> insecure_;
    std::map<std::string, std::vector<Done>> waiting_;  // by image: the callers of the pull under way
    std::set<std::string> known_;
    std::map<std::string, Error> failures_;
};

}  // namespace hull::orchestrator
