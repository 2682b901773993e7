// permessage-deflate (RFC 7692 §7.2) as a sans-I/O codec over zlib: compresses outgoing messages and
// decompresses incoming ones, in pieces, into buffers the caller owns.
//
// SECURITY: compressing secrets together with data an attacker can influence lets the attacker learn
// the secrets from the compressed sizes (CRIME, BREACH). That is why the switch that turns compression
// on is called `dangerous_enable_compression`, and why a message can opt out with
// message_flags::disable_compression (sent with RSV1 clear, it never enters the compressor).
//
// How the stream uses it (one codec per connection, built once the handshake agreed on parameters):
// - Send: a compressed message is one or more calls of compress() (or compress_some()), the last with
//   end_of_message; the first frame carries RSV1, continuation frames never do. A message sent with
//   disable_compression skips the codec entirely and leaves the compression context untouched.
// - Receive: a message whose first frame has RSV1 is fed, unmasked, chunk by chunk in payload order to
//   decompress_some(), with end_of_message on the chunk that ends its final frame (an empty chunk when
//   that frame is empty). The output goes straight into the caller's receive buffer.
// - Failures: decompress_status::corrupt → close 1007 (invalid frame payload data, as most peers
//   answer undecodable payloads); too_big → close 1009. Protocol errors around the codec — RSV1 on a
//   control or continuation frame, RSV2/RSV3, RSV1 without the extension — are the stream's: 1002.
//
// Memory: zlib's state is what a compressed connection costs (the figures per window size are in
// tests/unit/deflate/permessage_test.cpp). A direction with context takeover keeps its state for the
// life of the connection. A direction without it needs state only while a message is in flight; with
// codec_options::release_between_messages (the default) the state is freed when the message ends, into
// a small per-thread cache of zlib's blocks, so an idle connection holds no zlib memory and the next
// message takes the blocks back without calling the allocator.
//
// Window size 8: zlib's raw deflate refuses windowBits 8. We compress with 9 instead, which still keeps
// the promise of a 256-byte window: zlib never matches further back than w_size − MIN_LOOKAHEAD, i.e.
// 512 − 262 = 250 bytes (a test decodes our output with a strict decoder to hold zlib to that). The
// inflater also uses 9 where 8 was agreed: zlib would accept 8, but a peer whose compressor maps 8 to 9
// without zlib's limit would then fail on a valid-looking stream; 256 bytes more window tolerate it.
#pragma once

#include <duplex/deflate/negotiation.hpp>
#include <duplex/websocket/state.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <stdexcept>
#include <vector>

namespace duplex::deflate {

// How our compressor works; none of it is negotiated.
struct codec_options {
    // zlib's level: 0 (stored, no compression) to 9 (smallest output, slowest); -1 is zlib's default, 6.
    int compression_level = -1;
    // zlib's memLevel, 1–9: the compressor's hash table and block buffer take 2^(memory_level + 9) bytes
    // together, next to 2^(window_bits + 2) for its window. 5 rather than zlib's 8 saves 112 KiB per
    // compressor for the same ratio on messages of a few KiB and about 2% more output on 64 KiB ones
    // (python-websockets made the same choice).
    int memory_level = 5;
    // Without context takeover, free zlib's state (into the per-thread cache) when a message ends
    // instead of keeping it and resetting it. Has no effect on a direction with context takeover.
    bool release_between_messages = true;
};

struct compress_result {
    std::size_t consumed = 0;  // input bytes taken
    std::size_t produced = 0;  // bytes written to the output
    bool done = false;         // all input taken and flushed (and, at end of message, the message ended)
};

enum class decompress_status {
    more,            // call again: with the rest of the input, more input, or (if the output filled) more room
    end_of_message,  // the message is complete; the next call starts the next compressed message
    corrupt,         // not DEFLATE data, or it ends inside a block: fail the connection with 1007
    too_big,         // the message would pass max_message_size: fail the connection with 1009
};

struct decompress_result {
    std::size_t consumed = 0;  // input bytes taken
    std::size_t produced = 0;  // bytes written to the output, never past max_message_size in total
    decompress_status status = decompress_status::more;
};

namespace detail {

// zlib asks for the same few block sizes every time a z_stream of one configuration starts, so blocks
// that a finished message gives back are kept for the next message of any connection on this thread.
// Bounded, so a burst of concurrent messages does not pin memory for good.
class zlib_block_cache {
public:
    static constexpr std::size_t max_blocks = 32;
    static constexpr std::size_t max_bytes = std::size_t{1} << 20;

    zlib_block_cache() = default;
    zlib_block_cache(const zlib_block_cache&) = delete;
    zlib_block_cache& operator=(const zlib_block_cache&) = delete;
    ~zlib_block_cache() {
        for (std::size_t i = 0; i < count_; ++i) ::operator delete(blocks_[i].memory);
        destroyed_ = true;
    }

    // The cache of the calling thread; null while the thread is exiting and the cache is gone.
    static zlib_block_cache* of_this_thread() noexcept {
        if (destroyed_) return nullptr;
        thread_local zlib_block_cache cache;
        return &cache;
    }

    void* take(std::size_t size) noexcept {
        for (std::size_t i = count_; i-- > 0;) {
            if (blocks_[i].size != size) continue;
            void* memory = blocks_[i].memory;
            blocks_[i] = blocks_[--count_];
            bytes_ -= size;
            return memory;
        }
        return nullptr;
    }

    bool keep(void* memory, std::size_t size) noexcept {
        if (count_ == max_blocks || bytes_ + size > max_bytes) return false;
        blocks_[count_++] = {memory, size};
        bytes_ += size;
        return true;
    }

private:
    struct block {
        void* memory;
        std::size_t size;
    };
    std::array<block, max_blocks> blocks_{};
    std::size_t count_ = 0, bytes_ = 0;
    // Trivially destructible, so it can still be read after the cache itself is destroyed.
    static inline thread_local bool destroyed_ = false;
};

// Each block starts with its size (zfree is not told it), padded to keep zlib's part aligned.
inline constexpr std::size_t block_header_size = alignof(std::max_align_t);

// zalloc/zfree for a codec: blocks come from the thread's cache or operator new, and the codec's
// counter (zlib's `opaque`) follows the bytes its streams hold.
inline voidpf zlib_allocate(voidpf opaque, uInt items, uInt size) noexcept {
    const std::size_t bytes = std::size_t{items} * size;
    auto* cache = zlib_block_cache::of_this_thread();
    void* memory = cache ? cache->take(bytes) : nullptr;
    if (!memory) memory = ::operator new(block_header_size + bytes, std::nothrow);
    if (!memory) return Z_NULL;
    std::memcpy(memory, &bytes, sizeof bytes);
    *static_cast<std::size_t*>(opaque) += bytes;
    return static_cast<unsigned char*>(memory) + block_header_size;
}

inline void zlib_release(voidpf opaque, voidpf address) noexcept {
    void* memory = static_cast<unsigned char*>(address) - block_header_size;
    std::size_t bytes;
    std::memcpy(&bytes, memory, sizeof bytes);
    *static_cast<std::size_t*>(opaque) -= bytes;
    auto* cache = zlib_block_cache::of_this_thread();
    if (!cache || !cache->keep(memory, bytes)) ::operator delete(memory);
}

inline uInt clamp_to_uint(std::size_t n) noexcept {
    return static_cast<uInt>(std::min<std::size_t>(n, UINT_MAX));
}

}  // namespace detail

// One connection's permessage-deflate codec. Not movable: zlib's state points back at its z_stream, so
// build it in place (e.g. std::optional::emplace once the handshake has negotiated).
class permessage {
public:
    // compress_some needs at least this much output room per call (a flush marker and the held-back tail).
    static constexpr std::size_t min_output_size = 16;

    permessage(ws::role role, const negotiated& agreed, const codec_options& options = {})
        : options_(options),
          send_window_bits_(role == ws::role::server ? agreed.server_max_window_bits : agreed.client_max_window_bits),
          receive_window_bits_(role == ws::role::server ? agreed.client_max_window_bits : agreed.server_max_window_bits),
          send_no_context_takeover_(role == ws::role::server ? agreed.server_no_context_takeover
                                                             : agreed.client_no_context_takeover),
          receive_no_context_takeover_(role == ws::role::server ? agreed.client_no_context_takeover
                                                                : agreed.server_no_context_takeover) {
        detail::check_window_bits(send_window_bits_, "the sending window");
        detail::check_window_bits(receive_window_bits_, "the receiving window");
        if (options.compression_level < -1 || options.compression_level > 9)
            throw std::invalid_argument("compression_level must be between -1 and 9");
        if (options.memory_level < 1 || options.memory_level > 9)
            throw std::invalid_argument("memory_level must be between 1 and 9");
    }

    permessage(const permessage&) = delete;
    permessage& operator=(const permessage&) = delete;

    ~permessage() {
        end_deflater();
        end_inflater();
    }

    // ---- sending ----

    // Compresses the next piece of an outgoing message into `output` (at least min_output_size bytes).
    // Call again with the rest of the input and the same end_of_message until done; each piece is
    // flushed (Z_SYNC_FLUSH), so the peer can decompress every frame as it arrives, and the last one
    // ends without the 00 00 ff ff that §7.2.1 removes.
    compress_result compress_some(std::span<const std::byte> input, bool end_of_message, std::span<std::byte> output) {
        if (output.size() < min_output_size) throw std::invalid_argument("compress_some needs at least 16 bytes of output");
        if (!deflater_ready_) start_deflater();
        // At the end of a message the last 4 bytes written so far are held back: when the flush
        // completes they are the marker to remove, and until then nobody can tell.
        std::memcpy(output.data(), held_.data(), held_size_);
        std::size_t written = held_size_;
        held_size_ = 0;

        const auto offered = detail::clamp_to_uint(input.size());
        deflater_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(input.data()));
        deflater_.avail_in = offered;
        const auto room = detail::clamp_to_uint(output.size() - written);
        deflater_.next_out = reinterpret_cast<Bytef*>(output.data() + written);
        deflater_.avail_out = room;
        // Z_BUF_ERROR only says nothing was left to do (a flush right after a flush).
        if (const int rc = ::deflate(&deflater_, Z_SYNC_FLUSH); rc != Z_OK && rc != Z_BUF_ERROR)
            throw std::runtime_error("zlib deflate failed");
        const std::size_t consumed = offered - deflater_.avail_in;
        written += room - deflater_.avail_out;
        const bool flushed = deflater_.avail_out != 0 && consumed == input.size();

        if (!end_of_message) return {consumed, written, flushed};
        if (!flushed) {
            held_size_ = std::min<std::size_t>(held_.size(), written);
            std::memcpy(held_.data(), output.data() + written - held_size_, held_size_);
            return {consumed, written - held_size_, false};
        }
        if (written == 0) {
            // Nothing since the previous flush, so zlib wrote no marker. One zero byte is the header of
            // an empty stored block, which the receiver's appended 00 00 ff ff completes (§7.2.2).
            output[0] = std::byte{0};
            written = 1;
        } else {
            assert(written >= 4 && output[written - 4] == std::byte{0x00} && output[written - 3] == std::byte{0x00} &&
                   output[written - 2] == std::byte{0xff} && output[written - 1] == std::byte{0xff});
            written -= 4;
        }
        finish_sent_message();
        return {consumed, written, true};
    }

    // compress_some until done, appending to `out`: the convenient form for the stream, which sends
    // each call's output as one frame. `out` keeps its capacity, so a vector reused across messages
    // costs no allocation once it has grown to the largest compressed piece. Returns the bytes appended.
    std::size_t compress(std::span<const std::byte> input, bool end_of_message, std::vector<std::byte>& out) {
        if (!deflater_ready_) start_deflater();
        const std::size_t start = out.size();
        std::size_t used = start;
        // deflateBound is for one Z_FINISH; the flush marker and held-back tail need a few bytes more.
        out.resize(used + std::max<std::size_t>(min_output_size,
                                                ::deflateBound(&deflater_, detail::clamp_to_uint(input.size())) + 8));
        for (;;) {
            const auto r = compress_some(input, end_of_message, std::span<std::byte>(out).subspan(used));
            used += r.produced;
            input = input.subspan(r.consumed);
            if (r.done) break;
            out.resize(std::max(2 * out.size(), used + min_output_size));
        }
        out.resize(used);
        return used - start;
    }

    // Forgets what earlier messages left in the compressor's window, so that the next message refers to
    // nothing before it. Pub/sub needs this: a message compressed elsewhere from an empty window (a
    // shared frame) went to the peer between our messages, so the peer's window no longer ends where
    // ours does, and a back-reference of ours would point at the wrong bytes (RFC 7692 §7.2.3).
    void reset_send_context() noexcept {
        if (deflater_ready_) ::deflateReset(&deflater_);
    }

    // ---- receiving ----

    // Decompresses the next chunk of a compressed message's payload into `output`. `end_of_message`
    // says this chunk ends the message's last frame. `max_message_size` bounds the decompressed size of
    // the whole message: the codec never writes past it, however small the input (a decompression bomb
    // costs at most the limit), and says too_big as soon as one more byte would follow. After corrupt or
    // too_big the connection is failed; the codec must not decompress again.
    decompress_result decompress_some(std::span<const std::byte> input, bool end_of_message, std::span<std::byte> output,
                                      std::size_t max_message_size) {
        const std::size_t allowance = max_message_size - std::min(max_message_size, received_);
        // Room for one byte past the limit, when the caller's buffer has it, tells a message that is too
        // big from one that ends exactly at the limit.
        const std::size_t writable = allowance == SIZE_MAX ? output.size() : std::min(output.size(), allowance + 1);
        const auto room = detail::clamp_to_uint(writable);
        if (!input.empty() && !inflater_ready_) start_inflater();
        std::byte unused;
        inflater_.next_out = reinterpret_cast<Bytef*>(room ? output.data() : &unused);
        inflater_.avail_out = room;

        std::size_t consumed = 0;
        bool corrupt = false;
        if (!input.empty()) {
            message_has_payload_ = true;
            consumed = inflate_from(input.data(), input.size(), corrupt);
        }
        const bool input_done = consumed == input.size();
        // An empty payload is taken as an empty message rather than fed on: 00 00 ff ff alone is not a
        // whole DEFLATE block, and such a peer means "nothing" (ours sends a 0 byte, §7.2.3.6).
        if (!corrupt && end_of_message && input_done && message_has_payload_ && tail_used_ < empty_block_tail.size()) {
            const bool between_blocks = tail_used_ == 0 && (inflater_.data_type & 128) != 0;
            if (after_final_block_ || between_blocks) {
                // The payload ended with a BFINAL block, which already ends the data, or at a block
                // boundary with its flush marker left in: a message whose last frame is empty after a
                // flushed fragment, as python-websockets sends it. Either way the tail would only open a
                // block that never closes.
                tail_used_ = empty_block_tail.size();
            } else {
                tail_used_ += inflate_from(empty_block_tail.data() + tail_used_,
                                           empty_block_tail.size() - tail_used_, corrupt);
            }
        }
        const std::size_t produced = room - inflater_.avail_out;
        received_ += produced;
        // The byte past the limit is never reported, also when zlib found corrupt data after it.
        const std::size_t past_limit = received_ > max_message_size ? received_ - max_message_size : 0;
        if (corrupt) return {consumed, produced - past_limit, decompress_status::corrupt};
        if (past_limit != 0) return {consumed, produced - past_limit, decompress_status::too_big};
        if (!end_of_message || !input_done) return {consumed, produced, decompress_status::more};
        if (message_has_payload_) {
            if (tail_used_ < empty_block_tail.size()) return {consumed, produced, decompress_status::more};
            // The appended empty stored block must leave the inflater between blocks; anywhere else the
            // payload ended inside a block (§7.2.2 makes it whole DEFLATE blocks).
            const bool between_blocks = after_final_block_ || (inflater_.data_type & 128) != 0;
            if (!between_blocks) return {consumed, produced, decompress_status::corrupt};
        }
        finish_received_message();
        return {consumed, produced, decompress_status::end_of_message};
    }

    // ---- introspection ----

    // Bytes zlib holds for this connection right now (both directions, not counting the thread cache).
    std::size_t memory_in_use() const noexcept { return memory_in_use_; }
    int send_window_bits() const noexcept { return send_window_bits_; }
    int receive_window_bits() const noexcept { return receive_window_bits_; }
    bool send_context_takeover() const noexcept { return !send_no_context_takeover_; }
    bool receive_context_takeover() const noexcept { return !receive_no_context_takeover_; }

private:
    static constexpr std::array<std::byte, 4> empty_block_tail{std::byte{0x00}, std::byte{0x00}, std::byte{0xff},
                                                               std::byte{0xff}};

    void prepare(z_stream& z) noexcept {
        z = z_stream{};
        z.zalloc = detail::zlib_allocate;
        z.zfree = detail::zlib_release;
        z.opaque = &memory_in_use_;
    }

    void start_deflater() {
        prepare(deflater_);
        // Raw DEFLATE (negative windowBits), and 9 for an agreed 8: see the note at the top.
        const int rc = ::deflateInit2(&deflater_, options_.compression_level, Z_DEFLATED, -std::max(send_window_bits_, 9),
                                      options_.memory_level, Z_DEFAULT_STRATEGY);
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc != Z_OK) throw std::runtime_error("zlib deflateInit2 failed");
        deflater_ready_ = true;
    }

    void start_inflater() {
        prepare(inflater_);
        const int rc = ::inflateInit2(&inflater_, -std::max(receive_window_bits_, 9));
        if (rc == Z_MEM_ERROR) throw std::bad_alloc();
        if (rc != Z_OK) throw std::runtime_error("zlib inflateInit2 failed");
        inflater_ready_ = true;
    }

    void end_deflater() noexcept {
        if (deflater_ready_) ::deflateEnd(&deflater_);
        deflater_ready_ = false;
    }

    void end_inflater() noexcept {
        if (inflater_ready_) ::inflateEnd(&inflater_);
        inflater_ready_ = false;
        after_final_block_ = false;
    }

    void finish_sent_message() {
        if (!send_no_context_takeover_) return;
        if (options_.release_between_messages)
            end_deflater();
        else
            ::deflateReset(&deflater_);
    }

    void finish_received_message() {
        received_ = 0;
        tail_used_ = 0;
        message_has_payload_ = false;
        if (!receive_no_context_takeover_ || !inflater_ready_) return;
        if (options_.release_between_messages) {
            end_inflater();
        } else {
            ::inflateReset(&inflater_);
            after_final_block_ = false;
        }
    }

    // Feeds bytes to the inflater (output pointers already set); returns how many it took.
    std::size_t inflate_from(const std::byte* data, std::size_t size, bool& corrupt) {
        const auto offered = detail::clamp_to_uint(size);
        inflater_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(data));
        inflater_.avail_in = offered;
        for (;;) {
            if (after_final_block_ && inflater_.avail_in != 0) continue_after_final_block();
            const int rc = ::inflate(&inflater_, Z_SYNC_FLUSH);
            if (rc == Z_STREAM_END) {
                after_final_block_ = true;
                if (inflater_.avail_in == 0) break;
                continue;
            }
            if (rc == Z_OK || rc == Z_BUF_ERROR) break;  // input used up or output full
            if (rc == Z_MEM_ERROR) throw std::bad_alloc();
            corrupt = true;  // Z_DATA_ERROR (Z_NEED_DICT cannot happen in raw mode)
            break;
        }
        return offered - inflater_.avail_in;
    }

    // zlib stops at a block with BFINAL set, but a message may go on after one (§7.2.3.4), and later
    // blocks — and with context takeover later messages — may still refer back into the window. So the
    // inflater restarts with its window as the dictionary. Only peers that flush with BFINAL get here,
    // so the 32 KiB copy stays out of line, off the stack of the common path.
    [[gnu::noinline, gnu::cold]] void continue_after_final_block() {
        std::array<Bytef, std::size_t{1} << max_window_bits> window;
        uInt length = 0;
        ::inflateGetDictionary(&inflater_, window.data(), &length);
        ::inflateReset(&inflater_);
        if (length != 0) ::inflateSetDictionary(&inflater_, window.data(), length);
        after_final_block_ = false;
    }

    codec_options options_;
    int send_window_bits_, receive_window_bits_;
    bool send_no_context_takeover_, receive_no_context_takeover_;
    std::size_t memory_in_use_ = 0;

    z_stream deflater_{};
    bool deflater_ready_ = false;
    std::array<std::byte, 4> held_{};
    std::size_t held_size_ = 0;

    z_stream inflater_{};
    bool inflater_ready_ = false;
    bool after_final_block_ = false;    // the inflater hit a BFINAL block and waits to be restarted
    bool message_has_payload_ = false;  // the message in progress has had at least one payload byte
    std::size_t tail_used_ = 0;         // how much of empty_block_tail the inflater has taken
    std::size_t received_ = 0;          // decompressed bytes of the message in progress
};

}  // namespace duplex::deflate
