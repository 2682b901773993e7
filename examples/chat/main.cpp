// duplex-chat — chat rooms on the message-driven API (app.map_websocket) and topics: a page at / to pick
// a name and a room, and at /chat?room=ROOM&name=NAME a WebSocket per member.
//
//   duplex-chat [--urls URL[;URL…]] [--threads N] [--compression] [--backplane redis://[user:password@]host:port[/db]]
//
// Every text message a member sends goes to every member of the same room, the sender included, as
//   {"type":"message","name":"Ada","text":"the text, verbatim"}
// and nowhere else. A member gets {"type":"welcome","room":…,"members":[…]} when it joins, and everyone
// in the room {"type":"join","name":…} and {"type":"leave","name":…} as members come and go; the text
// "/who" gets its sender alone {"type":"members","members":[…]}. Each room is a topic: a message is
// encoded (and with --compression, deflated) once for the whole room.
//
// --backplane makes this process one node of a cluster (several nodes behind a load balancer, see
// cluster.sh and the README's scale-out section): rooms span nodes through Redis pub/sub. It starts only
// if Redis accepts it (a wrong password or an unreachable server is an error at once), then rides out
// Redis outages by reconnecting. The member lists (welcome, /who) are this node's members; messages,
// joins and leaves reach the whole room.
//
// --compression accepts permessage-deflate. Off by default, as in duplex-echo: compressing secrets next
// to attacker-chosen text leaks them (CRIME/BREACH); a public chat room has none.
#include <duplex/duplex.hpp>
#include <duplex/pubsub/redis_backplane.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_name_size = 64;

// `text` as a JSON string (it is valid UTF-8: the stream checked it, or the query decoder produced it).
std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char escaped[8];
                std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += escaped;
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

std::string json_names(const std::vector<std::string>& names) {
    std::string out = "[";
    for (std::size_t i = 0; i < names.size(); ++i) out += (i ? "," : "") + json_string(names[i]);
    return out + "]";
}

// Who is in which room, for the welcome message (members may connect on any worker thread).
class roster {
public:
    std::vector<std::string> join(const std::string& room, const std::string& name) {
        std::lock_guard lock(mutex_);
        auto& members = rooms_[room];
        members.insert(name);
        return {members.begin(), members.end()};
    }
    std::vector<std::string> members(const std::string& room) {
        std::lock_guard lock(mutex_);
        const auto it = rooms_.find(room);
        return it == rooms_.end() ? std::vector<std::string>{} : std::vector<std::string>(it->second.begin(), it->second.end());
    }
    void leave(const std::string& room, const std::string& name) {
        std::lock_guard lock(mutex_);
        const auto it = rooms_.find(room);
        if (it == rooms_.end()) return;
        if (const auto member = it->second.find(name); member != it->second.end()) it->second.erase(member);
        if (it->second.empty()) rooms_.erase(it);
    }

private:
    std::mutex mutex_;
    std::map<std::string, std::multiset<std::string>> rooms_;
};

struct member {
    std::string room, name;
    bool joined = false;  // past on_open's checks: in the roster and the room's topic
    std::string topic() const { return "room:" + room; }
};

using session = duplex::websocket_session<member>;

duplex::websocket_handlers<member> chat_handlers(roster& who, bool compression) {
    duplex::websocket_handlers<member> chat;
    chat.accept.dangerous_enable_compression = compression;
    chat.on_open = [&who](session& socket, duplex::http_context& ctx) {
        auto& me = socket.data();
        me.room = ctx.request.query("room").value_or("lobby");
        me.name = ctx.request.query("name").value_or("");
        if (me.room.empty() || me.room.size() > max_name_size || me.name.empty() || me.name.size() > max_name_size) {
            socket.close(duplex::close_status::policy_violation, "a room and a name of 1 to 64 bytes, please");
            return;
        }
        socket.subscribe(me.topic());
        me.joined = true;
        const std::string welcome = "{\"type\":\"welcome\",\"room\":" + json_string(me.room) + ",\"members\":";
        socket.send(welcome + json_names(who.join(me.room, me.name)) + "}");
        socket.publish(me.topic(), "{\"type\":\"join\",\"name\":" + json_string(me.name) + "}");
    };
    chat.on_message = [&who](session& socket, std::string_view text, duplex::message_type type) {
        if (type != duplex::message_type::text) {
            socket.close(duplex::close_status::invalid_message_type, "text messages only");
            return;
        }
        const auto& me = socket.data();
        if (text == "/who") {  // to the asker alone
            socket.send("{\"type\":\"members\",\"members\":" + json_names(who.members(me.room)) + "}");
            return;
        }
        socket.publish(me.topic(), "{\"type\":\"message\",\"name\":" + json_string(me.name) + ",\"text\":" +
                                       json_string(text) + "}");
    };
    chat.on_close = [&who](session& socket, duplex::close_status, std::string_view) {
        const auto& me = socket.data();
        if (!me.joined) return;
        who.leave(me.room, me.name);
        socket.publish(me.topic(), "{\"type\":\"leave\",\"name\":" + json_string(me.name) + "}");
    };
    return chat;
}

constexpr std::string_view page = R"html(<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>duplex chat</title>
<style>
  body { font: 15px system-ui, sans-serif; margin: 2em auto; max-width: 46em; }
  #log { border: 1px solid #ccc; height: 22em; overflow-y: auto; padding: .5em; }
  #log .notice { color: #777; } #members { color: #555; }
  form { margin: .6em 0; }
</style>
<h1>duplex chat</h1>
<form id="join">
  <input id="name" placeholder="your name" required maxlength="64">
  <input id="room" placeholder="room" value="lobby" required maxlength="64">
  <button>Join</button>
</form>
<div id="members"></div>
<div id="log"></div>
<form id="say"><input id="text" placeholder="message" size="50" autocomplete="off" disabled> <button disabled>Send</button></form>
<script>
let socket = null, members = [];
const $ = id => document.getElementById(id);
function line(text, notice) {
  const p = document.createElement('div');
  p.textContent = text;
  if (notice) p.className = 'notice';
  $('log').append(p);
  $('log').scrollTop = $('log').scrollHeight;
}
function showMembers() { $('members').textContent = 'In the room: ' + members.join(', '); }
$('join').onsubmit = event => {
  event.preventDefault();
  if (socket) socket.close(1000);
  members = [];
  $('log').textContent = '';
  const url = new URL('/chat', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('room', $('room').value);
  url.searchParams.set('name', $('name').value);
  socket = new WebSocket(url);
  socket.onopen = () => { for (const e of $('say').elements) e.disabled = false; $('text').focus(); };
  socket.onmessage = event => {
    const m = JSON.parse(event.data);
    if (m.type === 'welcome') { members = m.members; line('You joined ' + m.room + '.', true); }
    else if (m.type === 'join') { if (m.name !== $('name').value || members.indexOf(m.name) < 0) members.push(m.name); line(m.name + ' joined.', true); }
    else if (m.type === 'leave') { members.splice(members.indexOf(m.name), 1); line(m.name + ' left.', true); }
    else if (m.type === 'members') { members = m.members; }
    else if (m.type === 'message') line(m.name + ': ' + m.text);
    showMembers();
  };
  socket.onclose = event => {
    line('Disconnected (' + event.code + (event.reason ? ': ' + event.reason : '') + ').', true);
    for (const e of $('say').elements) e.disabled = true;
  };
};
$('say').onsubmit = event => {
  event.preventDefault();
  if (socket && $('text').value) socket.send($('text').value);
  $('text').value = '';
};
</script>
</html>
)html";

}  // namespace

int main(int argc, char** argv) {
    bool compression = false;
    std::string backplane;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--compression") compression = true;
        else if (arg == "--backplane" && i + 1 < argc) backplane = argv[++i];
    }
    try {
        duplex::app app(argc, argv);
        if (!backplane.empty()) app.topics().attach_backplane(duplex::pubsub::redis_backplane::connect(backplane));
        roster who;
        app.use_websockets();
        app.map_websocket("/chat", chat_handlers(who, compression));
        app.map("/", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
            ctx.response.body = page;
            ctx.response.headers.set("Content-Type", "text/html; charset=utf-8");
            co_return;
        });
        app.run("http://localhost:5000");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "duplex-chat: %s\n", e.what());
        return 1;
    }
}
