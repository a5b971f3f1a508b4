#include "orchestrator/node/image_puller.hpp"

#include <mutex>
#include <thread>

#include <boost/asio/post.hpp>

#include "runtime/engine.hpp"

namespace hull::orchestrator {

struct ImagePuller::Shared {
    std::mutex mu;
    ImagePuller* puller = nullptr;  // null once it is gone: a late result is dropped
    boost::asio::io_context* ioc = nullptr;
};

ImagePuller::ImagePuller(boost::asio::io_context& ioc, std::string stateDir, std::string runDir,
                         std::vector<std::string> insecureRegistries)
    : shared_(std::make_shared<Shared>()),
      stateDir_(std::move(stateDir)),
      runDir_(std::move(runDir)),
      insecure_(std::move(insecureRegistries)) {
    shared_->puller = this;
    shared_->ioc = &ioc;
}

ImagePuller::~ImagePuller() {
    std::lock_guard lock(shared_->mu);
    shared_->puller = nullptr;
    shared_->ioc = nullptr;
}

void ImagePuller::ensure(const std::string& image, Done done) {
    auto& waiting = waiting_[image];
    waiting.push_back(std::move(done));
    if (waiting.size() > 1) return;  // joins the pull under way
    // An Engine of its own: the agent's is the loop's alone.
    std::thread([shared = shared_, image, state = stateDir_, run = runDir_, insecure = insecure_] {
        Result<void> r = [&]() -> Result<void> {
            auto engine = TRY(runtime::Engine::open(state, run));
            return engine.ensureImage(image, insecure);
        }();
        std::lock_guard lock(shared->mu);
        if (!shared->ioc) return;
        boost::asio::post(*shared->ioc, [shared, image, r] {
            // On the io_context's thread, as the puller's destructor is: no lock needed to read it.
            if (shared->puller) shared->puller->finished(image, r);
        });
    }).detach();
}

void ImagePuller::finished(const std::string& image, const Result<void>& r) {
    auto it = waiting_.find(image);
    if (it == waiting_.end()) return;
    std::vector<Done> callers = std::move(it->second);
    waiting_.erase(it);
    if (r) {
        known_.insert(image);
        failures_.erase(image);
    } else {
        known_.erase(image);
        failures_.insert_or_assign(image, r.error());
    }
    for (auto& done : callers) done(r);
}

std::optional<Error> ImagePuller::takeFailure(const std::string& image) {
    auto it = failures_.find(image);
    if (it == failures_.end()) return std::nullopt;
    Error e = it->second;
    failures_.erase(it);
    return e;
}

}  // namespace hull::orchestrator
