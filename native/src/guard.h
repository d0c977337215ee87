// guard.h - how every exported function reports errors: a thread-local message, a status code,
// and a catch-all so that no C++ exception crosses the C ABI.
#pragma once

#include <exception>
#include <new>
#include <stdexcept>
#include <string>

#include "ra3.h"

namespace ra3 {

/** Thrown inside the library for a bad argument; becomes RA3_ERR_INVALID_ARGUMENT. */
struct invalid_argument : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void set_last_error(const std::string& message);
void clear_last_error();

/** Runs body, mapping exceptions to status codes and the last-error message. */
template <typename Body>
ra3_status guarded(const char* function, Body&& body) noexcept {
    try {
        clear_last_error();
        body();
        return RA3_OK;
    } catch (const invalid_argument& e) {
        set_last_error(std::string(function) + ": " + e.what());
        return RA3_ERR_INVALID_ARGUMENT;
    } catch (const std::bad_alloc&) {
        set_last_error(std::string(function) + ": out of memory");
        return RA3_ERR_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        set_last_error(std::string(function) + ": internal error: " + e.what());
        return RA3_ERR_INTERNAL;
    } catch (...) {
        set_last_error(std::string(function) + ": internal error (unknown exception)");
        return RA3_ERR_INTERNAL;
    }
}

/** Throws invalid_argument with message unless condition holds. */
inline void require(bool condition, const std::string& message) {
    if (!condition) throw invalid_argument(message);
}

}  // namespace ra3
