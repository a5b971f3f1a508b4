#include "netns/nft.hpp"

#include <nftables/libnftables.h>

#include <cstdio>
#include <memory>

#include "sys/fs.hpp"

namespace hull::netns {

namespace {
struct CtxDel {
    void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};
}  // namespace

Result<std::string> nftOutput(const std::string& script, const std::string& what, bool json) {
    std::unique_ptr<nft_ctx, CtxDel> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!ctx) return fail(Error::plain(ENOMEM, what + ": nft_ctx_new failed"));
    if (json) nft_ctx_output_set_flags(ctx.get(), NFT_CTX_OUTPUT_JSON);
    nft_ctx_buffer_output(ctx.get());
    nft_ctx_buffer_error(ctx.get());
    int rc = nft_run_cmd_from_buffer(ctx.get(), script.c_str());
    if (rc != 0) {
        std::string err = sys::trim(nft_ctx_get_error_buffer(ctx.get()));
        return fail(Error::plain(EINVAL, what + ": " + (err.empty() ? "nft failed" : err)));
    }
    return std::string(nft_ctx_get_output_buffer(ctx.get()));
}

Result<void> runNft(const std::string& script, const std::string& what) {
    TRY(nftOutput(script, what));
    return {};
}

bool nftMissing(const Error& e) { return e.message().find("No such file") != std::string::npos; }

}  // namespace hull::netns
