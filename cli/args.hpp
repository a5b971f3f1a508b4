#pragma once
// The command-line parser shared by hull-runc and hull: runc's style of
// options (--flag value, --flag=value, -f value, boolean flags).
#include <map>
#include <string>
#include <vector>

namespace hull::cli {

/// A tiny getopt for runc's style: --flag value, --flag=value, -f value, bool flags.
class Args {
public:
    /// INTERSPERSED: options may follow positionals too (`image import PATH
    /// --name REF`), as users of other CLIs expect; not for commands whose
    /// positionals end in a command line of their own (`exec ID CMD -x`).
    Args(std::vector<std::string> argv, std::vector<std::string> boolFlags, std::vector<std::string> valueFlags,
         std::map<std::string, std::string> aliases, bool interspersed = false)
        : bools_(std::move(boolFlags)), values_(std::move(valueFlags)), aliases_(std::move(aliases)) {
        for (size_t i = 0; i < argv.size(); ++i) {
            std::string a = argv[i];
            if (a == "--") {
                positional.insert(positional.end(), argv.begin() + long(i) + 1, argv.end());
                break;
            }
            // The first positional ends option parsing (exec ID CMD -x keeps -x for CMD),
            // unless options may come anywhere.
            if (a.size() < 2 || a[0] != '-' || (!positional.empty() && !interspersed)) {
                positional.push_back(a);
                continue;
            }
            // Bundled short booleans, as in `exec -it`: each letter on its own.
            if (a.size() > 2 && a[1] != '-' && a.find('=') == std::string::npos) {
                bool allBools = true;
                for (size_t k = 1; k < a.size(); ++k) {
                    auto al = aliases_.find(std::string("-") + a[k]);
                    allBools &= al != aliases_.end() && contains(bools_, al->second);
                }
                if (allBools) {
                    for (size_t k = 1; k < a.size(); ++k) flags[aliases_.at(std::string("-") + a[k])].push_back("true");
                    continue;
                }
            }
            std::string name = a, value;
            bool hasValue = false;
            if (auto eq = a.find('='); eq != std::string::npos) {
                name = a.substr(0, eq);
                value = a.substr(eq + 1);
                hasValue = true;
            }
            if (auto al = aliases_.find(name); al != aliases_.end()) name = al->second;
            if (contains(bools_, name)) {
                flags[name].push_back(hasValue ? value : "true");
            } else if (contains(values_, name)) {
                if (!hasValue) {
                    if (i + 1 >= argv.size()) {
                        error = "option " + name + " needs a value";
                        return;
                    }
                    value = argv[++i];
                }
                flags[name].push_back(value);
            } else {
                error = "unknown option " + a;
                return;
            }
        }
    }
    bool has(const std::string& f) const {
        auto it = flags.find(f);
        return it != flags.end() && it->second.back() != "false";
    }
    std::string get(const std::string& f, const std::string& def = "") const {
        auto it = flags.find(f);
        return it == flags.end() ? def : it->second.back();
    }
    std::vector<std::string> all(const std::string& f) const {
        auto it = flags.find(f);
        return it == flags.end() ? std::vector<std::string>{} : it->second;
    }

    std::map<std::string, std::vector<std::string>> flags;
    std::vector<std::string> positional;
    std::string error;

private:
    static bool contains(const std::vector<std::string>& v, const std::string& s) {
        for (auto& x : v)
            if (x == s) return true;
        return false;
    }
    std::vector<std::string> bools_, values_;
    std::map<std::string, std::string> aliases_;
};

}  // namespace hull::cli
