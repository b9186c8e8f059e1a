package io.jnbd.server;

import io.jnbd.protocol.Nbd;
import io.jnbd.protocol.Request;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * One fuzz session as the client plays it: the messages it sends, in order, each with what the
 * server must make of it. {@link FuzzGenerator} writes scripts, {@link FuzzPlayer} plays them
 * against a server and judges the replies. Expectations of options are set by the generator,
 * which knows what it broke; requests are judged by the player from their fields.
 */
record FuzzScript(List<Step> steps) {

  /** Something the client sends. */
  sealed interface Step permits ClientFlags, Option, Burst, Partial, Garble, End {
    byte[] bytes();
  }

  /** The client's flags after the greeting; {@code dropped} when the server must hang up on them. */
  record ClientFlags(int flags, boolean dropped) implements Step {
    @Override
    public byte[] bytes() {
      return ByteBuffer.allocate(4).putInt(flags).array();
    }

    @Override
    public String toString() {
      return "client flags 0x" + Integer.toHexString(flags) + (dropped ? " (must be dropped)" : "");
    }
  }

  /** What the server must answer to an option. */
  enum OptionOutcome {
    /** Replies ending in ACK; for EXPORT_NAME the export's size and flags. */
    ACK,
    /** Replies ending in an ERR_* type; the handshake goes on. */
    ERROR,
    /** ERR_UNSUP; the handshake goes on. */
    UNSUPPORTED,
    /** ACK or an error, as the server sees fit; the handshake goes on. */
    ANSWERED,
    /** The server hangs up, after at most one reply. */
    DROPPED
  }

  /**
   * An option, sent once the reply to the one before has been read.
   *
   * @param contexts for LIST_META_CONTEXT and SET_META_CONTEXT that succeed, the context names
   *     the replies must list; null for other options
   * @param transmission for a GO or EXPORT_NAME that succeeds, what transmission starts with
   */
  record Option(String label, byte[] bytes, int option, OptionOutcome outcome, Set<String> contexts,
      Transmission transmission) implements Step {
    @Override
    public String toString() {
      return label + " -> " + outcome + " (" + bytes.length + " bytes)";
    }
  }

  /**
   * What the handshake settled.
   *
   * @param zeroPadded EXPORT_NAME's reply carries 124 zero bytes (the client did not ask for NO_ZEROES)
   */
  record Transmission(boolean structuredReplies, boolean baseAllocation, boolean zeroPadded) {}

  /** Transmission-phase messages sent back to back; the replies are read after the last one. */
  record Burst(List<Message> messages) implements Step {
    @Override
    public byte[] bytes() {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      messages.forEach(message -> out.writeBytes(message.bytes()));
      return out.toByteArray();
    }

    @Override
    public String toString() {
      StringBuilder text = new StringBuilder("burst of " + messages.size() + ":");
      messages.forEach(message -> text.append("\n      ").append(message));
      return text.toString();
    }
  }

  /** One message of a burst. */
  sealed interface Message permits Command, BadMagic, Partial, Garble {
    byte[] bytes();
  }

  /** A request header with its whole payload: the player judges it by its fields. */
  record Command(Request request, byte[] payload) implements Message {
    @Override
    public byte[] bytes() {
      ByteBuffer out = ByteBuffer.allocate(Nbd.REQUEST_SIZE + payload.length);
      request.encode(out);
      return out.put(payload).array();
    }

    @Override
    public String toString() {
      return request + " cookie=" + Long.toUnsignedString(request.cookie())
          + (payload.length > 0 ? " +" + payload.length + " payload bytes" : "");
    }
  }

  /** A request header whose magic is wrong: the server must hang up once it has answered what came before. */
  record BadMagic(byte[] bytes) implements Message {
    @Override
    public String toString() {
      return "request with bad magic 0x" + Integer.toHexString(ByteBuffer.wrap(bytes).getInt());
    }
  }

  /** The first bytes of a message, after which the client stops sending: only {@link End} follows. */
  record Partial(String label, byte[] bytes) implements Step, Message {
    @Override
    public String toString() {
      return "the first " + bytes.length + " bytes of " + label;
    }
  }

  /**
   * Bytes after which the server's reading of the stream cannot be predicted (a length that
   * does not match what follows): from here on replies are only checked for being well formed.
   */
  record Garble(String label, byte[] bytes) implements Step, Message {
    /** Its first bytes only, which are no easier to predict. */
    Garble cut(int length) {
      return new Garble("the first " + length + " bytes of " + label, Arrays.copyOf(bytes, length));
    }

    @Override
    public String toString() {
      return label + " (" + bytes.length + " bytes; the stream is out of step from here)";
    }
  }

  /**
   * The client stops: with {@code halfClose} it shuts its sending side and reads what the server
   * still has to say until the server hangs up; otherwise it closes the socket at once.
   */
  record End(boolean halfClose) implements Step {
    @Override
    public byte[] bytes() {
      return new byte[0];
    }

    @Override
    public String toString() {
      return halfClose ? "shut down sending, read to the end" : "close";
    }
  }

  /** Bytes the client sends in all. */
  int length() {
    return steps.stream().mapToInt(step -> step.bytes().length).sum();
  }

  /**
   * The same session cut short after {@code sent} bytes: the message that holds the cut is sent
   * in part, and the client then ends as {@code end} says.
   */
  FuzzScript cutAfter(int sent, End end) {
    List<Step> kept = new ArrayList<>();
    int left = sent;
    for (Step step : steps) {
      if (step instanceof End) {
        break;
      }
      int length = step.bytes().length;
      if (left >= length) {
        kept.add(step);
        left -= length;
        continue;
      }
      if (left == 0) {
        break;
      }
      if (step instanceof Burst burst) {
        List<Message> messages = new ArrayList<>();
        for (Message message : burst.messages()) {
          int size = message.bytes().length;
          if (left >= size) {
            messages.add(message);
            left -= size;
          } else {
            if (left > 0) {
              messages.add(message instanceof Garble garble ? garble.cut(left) : new Partial(message.toString(), Arrays.copyOf(message.bytes(), left)));
            }
            break;
          }
        }
        kept.add(new Burst(messages));
      } else {
        kept.add(step instanceof Garble garble ? garble.cut(left) : new Partial(step.toString(), Arrays.copyOf(step.bytes(), left)));
      }
      break;
    }
    kept.add(end);
    return new FuzzScript(kept);
  }

  @Override
  public String toString() {
    StringBuilder text = new StringBuilder();
    steps.forEach(step -> text.append("\n    ").append(step));
    return text.toString();
  }
}
