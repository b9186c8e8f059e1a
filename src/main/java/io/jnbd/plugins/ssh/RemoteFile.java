package io.jnbd.plugins.ssh;

import io.jnbd.api.Errno;
import io.jnbd.api.NbdException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.sshd.client.SshClient;
import org.apache.sshd.client.config.hosts.HostConfigEntry;
import org.apache.sshd.client.session.ClientSession;
import org.apache.sshd.common.util.buffer.Buffer;
import org.apache.sshd.common.util.buffer.ByteArrayBuffer;
import org.apache.sshd.sftp.client.RawSftpClient;
import org.apache.sshd.sftp.client.SftpClient;
import org.apache.sshd.sftp.client.SftpClient.OpenMode;
import org.apache.sshd.sftp.client.SftpClientFactory;
import org.apache.sshd.sftp.client.SftpVersionSelector;
import org.apache.sshd.sftp.client.extensions.openssh.OpenSSHFsyncExtension;
import org.apache.sshd.sftp.client.extensions.openssh.OpenSSHLimitsExtension;
import org.apache.sshd.sftp.common.SftpConstants;
import org.apache.sshd.sftp.common.SftpException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One open remote file: an SSH session of its own, an SFTP channel and a file handle. Reads and
 * writes are split into chunks that are all sent before the first reply is awaited, so a large
 * request costs one round trip rather than one per chunk; MINA's SFTP client matches replies to
 * requests by id, so requests from several threads may be in flight at once too.
 */
final class RemoteFile implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(RemoteFile.class);
  /** SSH_FXP_* header ahead of the payload: length, type, request id. */
  private static final int HEADER = Integer.BYTES + 1 + Integer.BYTES;
  /**
   * Largest read or write one SFTP request carries when the server does not say (OpenSSH
   * announces its limits, 255 KiB, through limits@openssh.com); every SFTP server accepts 32 KiB,
   * and MINA's and OpenSSH's take this much.
   */
  static final int DEFAULT_CHUNK = 64 * 1024;
  /** Above OpenSSH's limit, larger requests only add latency to the first byte. */
  static final int MAX_CHUNK = 256 * 1024;
  /** How long a graceful close may wait for the server before the session is cut. */
  private static final Duration CLOSE_WAIT = Duration.ofSeconds(5);

  private final ClientSession session;
  private final SftpClient sftp;
  private final RawSftpClient raw;
  private final SftpClient.CloseableHandle handle;
  private final byte[] handleId;
  private final String where;
  private final boolean writable;
  private final long size;
  private final int readChunk;
  private final int writeChunk;
  private final OpenSSHFsyncExtension fsync;
  /** MINA's channel stream refuses a write while another is pending: sends go one at a time. */
  private final ReentrantLock sending = new ReentrantLock();

  private RemoteFile(ClientSession session, SftpClient sftp, SftpClient.CloseableHandle handle, String where,
      boolean writable) throws IOException {
    this.session = session;
    this.sftp = sftp;
    this.raw = (RawSftpClient) sftp;
    this.handle = handle;
    this.handleId = handle.getIdentifier();
    this.where = where;
    this.writable = writable;
    this.size = sftp.stat(handle).getSize();
    int maxRead = DEFAULT_CHUNK;
    int maxWrite = DEFAULT_CHUNK;
    OpenSSHLimitsExtension limits = sftp.getExtension(OpenSSHLimitsExtension.class);
    if (limits != null && limits.isSupported()) {
      var info = limits.limits();
      maxRead = chunk(info.maxReadLength);
      maxWrite = chunk(info.maxWriteLength);
    }
    this.readChunk = maxRead;
    this.writeChunk = maxWrite;
    OpenSSHFsyncExtension fsyncExtension = sftp.getExtension(OpenSSHFsyncExtension.class);
    this.fsync = fsyncExtension != null && fsyncExtension.isSupported() ? fsyncExtension : null;
    LOG.debug("{}: size {}, {}, read chunk {}, write chunk {}, fsync {}", where, size,
        writable ? "writable" : "read-only", readChunk, writeChunk, fsync != null);
  }

  private static int chunk(long limit) {
    return limit <= 0 ? DEFAULT_CHUNK : (int) Math.min(limit, MAX_CHUNK);
  }

  /** What a connection needs to know about how to open the file. */
  record OpenRequest(String path, boolean readOnly, boolean createAndTruncate, long createSize, int createMode) {}

  /**
   * Connects, logs in and opens the file. A refused host key, a failed login and a missing file
   * each get a message that says so.
   */
  static RemoteFile open(SshClient client, HostConfigEntry target, String password, Duration timeout,
      OpenRequest request) throws IOException {
    String where = target.getUsername() + "@" + target.getHostName() + ":" + target.getPort() + ":" + request.path();
    ClientSession session;
    try {
      session = client.connect(target, null, null).verify(timeout).getSession();
    } catch (IOException e) {
      throw new NbdException(Errno.EIO, "ssh: cannot connect to " + target.getHostName() + " port " + target.getPort()
          + ": " + rootMessage(e), e);
    }
    try {
      if (password != null) {
        session.addPasswordIdentity(password);
      }
      try {
        session.auth().verify(timeout);
      } catch (IOException e) {
        String refusal = KnownHosts.Verifier.refusal(session);
        if (refusal != null) {
          throw new NbdException(Errno.EIO, "ssh: refusing to connect: " + refusal, e);
        }
        throw new NbdException(Errno.EIO, "ssh: cannot log in as " + target.getUsername() + " on "
            + target.getHostName() + " port " + target.getPort() + ": " + rootMessage(e), e);
      }
      SftpClient sftp = SftpClientFactory.instance().createSftpClient(session, SftpVersionSelector.fixedVersionSelector(3));
      try {
        return openFile(session, sftp, where, request);
      } catch (IOException | RuntimeException e) {
        sftp.close();
        throw e;
      }
    } catch (IOException | RuntimeException e) {
      session.close(true);
      throw e;
    }
  }

  private static RemoteFile openFile(ClientSession session, SftpClient sftp, String where, OpenRequest request)
      throws IOException {
    if (request.createAndTruncate()) {
      SftpClient.CloseableHandle handle = openMode(sftp, where, request.path(),
          EnumSet.of(OpenMode.Read, OpenMode.Write, OpenMode.Create, OpenMode.Truncate));
      try {
        sftp.setStat(handle, new SftpClient.Attributes().perms(request.createMode()));
        sftp.setStat(handle, new SftpClient.Attributes().size(request.createSize()));
        if (request.createSize() > 0 && sftp.stat(handle).getSize() < request.createSize()) {
          // Some servers (MINA's) truncate but do not extend with SETSTAT; a last zero byte does.
          sftp.write(handle, request.createSize() - 1, new byte[1]);
        }
      } catch (IOException e) {
        handle.close();
        throw new NbdException(Errno.EIO, "ssh: " + where + ": cannot set the size and mode of the new file: "
            + e.getMessage(), e);
      }
      return new RemoteFile(session, sftp, handle, where, true);
    }
    if (!request.readOnly()) {
      try {
        return new RemoteFile(session, sftp, sftp.open(request.path(), OpenMode.Read, OpenMode.Write), where, true);
      } catch (SftpException e) {
        if (e.getStatus() != SftpConstants.SSH_FX_PERMISSION_DENIED) {
          throw openFailure(where, e);
        }
        LOG.info("{} is not writable: serving it read-only", where);
      }
    }
    return new RemoteFile(session, sftp, openMode(sftp, where, request.path(), EnumSet.of(OpenMode.Read)), where, false);
  }

  private static SftpClient.CloseableHandle openMode(SftpClient sftp, String where, String path, Set<OpenMode> modes)
      throws IOException {
    try {
      return sftp.open(path, modes);
    } catch (SftpException e) {
      throw openFailure(where, e);
    }
  }

  private static NbdException openFailure(String where, SftpException e) {
    String why = switch (e.getStatus()) {
      case SftpConstants.SSH_FX_NO_SUCH_FILE, SftpConstants.SSH_FX_NO_SUCH_PATH -> "no such file (check path=)";
      case SftpConstants.SSH_FX_PERMISSION_DENIED -> "permission denied";
      case SftpConstants.SSH_FX_FILE_IS_A_DIRECTORY -> "is a directory";
      default -> e.getMessage();
    };
    return new NbdException(Errno.EIO, "ssh: cannot open " + where + ": " + why, e);
  }

  long size() {
    return size;
  }

  boolean writable() {
    return writable;
  }

  boolean canFsync() {
    return fsync != null;
  }

  /** Fills {@code buffer} from {@code offset}, with every chunk's request sent before any reply is read. */
  void read(ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    int start = buffer.position();
    int chunks = (length + readChunk - 1) / readChunk;
    int[] ids = new int[chunks];
    for (int i = 0; i < chunks; i++) {
      int chunkLength = Math.min(readChunk, length - i * readChunk);
      ids[i] = sendRead(offset + (long) i * readChunk, chunkLength);
    }
    IOException failure = null;
    for (int i = 0; i < chunks; i++) {
      int chunkStart = i * readChunk;
      int chunkLength = Math.min(readChunk, length - chunkStart);
      try {
        if (failure == null) {
          ByteBuffer slice = buffer.slice(start + chunkStart, chunkLength);
          receiveData(ids[i], slice, offset + chunkStart);
          while (slice.hasRemaining()) {
            // A server may return fewer bytes than asked (SFTP allows it); ask again for the rest.
            receiveData(sendRead(offset + chunkStart + slice.position(), slice.remaining()), slice,
                offset + chunkStart + slice.position());
          }
        } else {
          raw.receive(ids[i]);
        }
      } catch (IOException e) {
        failure = failure != null ? failure : e;
      }
    }
    if (failure != null) {
      throw failure(failure, "read", offset, length);
    }
    buffer.position(start + length);
  }

  /** Writes the remaining bytes of {@code buffer} at {@code offset}, chunks pipelined as in {@link #read}. */
  void write(ByteBuffer buffer, long offset) throws IOException {
    int length = buffer.remaining();
    int start = buffer.position();
    int chunks = (length + writeChunk - 1) / writeChunk;
    int[] ids = new int[chunks];
    for (int i = 0; i < chunks; i++) {
      int chunkStart = i * writeChunk;
      ids[i] = sendWrite(offset + chunkStart, buffer.slice(start + chunkStart, Math.min(writeChunk, length - chunkStart)));
    }
    IOException failure = null;
    for (int id : ids) {
      try {
        checkStatus(raw.receive(id), "write");
      } catch (IOException e) {
        failure = failure != null ? failure : e;
      }
    }
    if (failure != null) {
      throw failure(failure, "write", offset, length);
    }
    buffer.position(start + length);
  }

  void flush() throws IOException {
    try {
      fsync.fsync(handle);
    } catch (IOException e) {
      throw failure(e, "fsync", 0, 0);
    }
  }

  private int sendRead(long offset, int length) throws IOException {
    Buffer request = request(Integer.BYTES + handleId.length + Long.BYTES + Integer.BYTES);
    request.putBytes(handleId);
    request.putLong(offset);
    request.putUInt(length);
    return send(SftpConstants.SSH_FXP_READ, request);
  }

  private int sendWrite(long offset, ByteBuffer data) throws IOException {
    int length = data.remaining();
    ByteArrayBuffer request = request(Integer.BYTES + handleId.length + Long.BYTES + Integer.BYTES + length);
    request.putBytes(handleId);
    request.putLong(offset);
    request.putUInt(length);
    data.get(request.array(), request.wpos(), length);
    request.wpos(request.wpos() + length);
    return send(SftpConstants.SSH_FXP_WRITE, request);
  }

  /** A buffer with room for the header in front, so that sending does not copy the payload again. */
  private static ByteArrayBuffer request(int payload) {
    ByteArrayBuffer buffer = new ByteArrayBuffer(HEADER + payload, false);
    buffer.rpos(HEADER);
    buffer.wpos(HEADER);
    return buffer;
  }

  private int send(int command, Buffer request) throws IOException {
    sending.lock();
    try {
      return raw.send(command, request);
    } finally {
      sending.unlock();
    }
  }

  /** Reads one reply to a READ into {@code into}; an SFTP EOF status means the file is shorter than it was. */
  private void receiveData(int id, ByteBuffer into, long offset) throws IOException {
    Buffer reply = raw.receive(id);
    reply.getInt();
    int type = reply.getUByte();
    reply.getInt();
    if (type == SftpConstants.SSH_FXP_DATA) {
      int count = reply.getInt();
      if (count > into.remaining() || count > reply.available()) {
        throw new IOException("server sent " + count + " bytes for a read of " + into.remaining());
      }
      into.put(reply.array(), reply.rpos(), count);
      if (count == 0) {
        throw new IOException("server returned no data at offset " + offset);
      }
      return;
    }
    if (type == SftpConstants.SSH_FXP_STATUS) {
      int status = reply.getInt();
      if (status == SftpConstants.SSH_FX_EOF) {
        throw new IOException("end of file at offset " + offset + ": the remote file shrank below " + size + " bytes");
      }
      throw new SftpException(status, reply.getString());
    }
    throw new IOException("unexpected SFTP reply type " + type + " to a read");
  }

  private static void checkStatus(Buffer reply, String operation) throws IOException {
    reply.getInt();
    int type = reply.getUByte();
    reply.getInt();
    if (type != SftpConstants.SSH_FXP_STATUS) {
      throw new IOException("unexpected SFTP reply type " + type + " to a " + operation);
    }
    int status = reply.getInt();
    if (status != SftpConstants.SSH_FX_OK) {
      throw new SftpException(status, reply.getString());
    }
  }

  /** The NBD error for a failed request: a full disk or quota stays what it is, anything else is EIO. */
  private NbdException failure(IOException e, String operation, long offset, long length) {
    Errno errno = Errno.EIO;
    if (e instanceof SftpException sftpError) {
      errno = switch (sftpError.getStatus()) {
        case SftpConstants.SSH_FX_NO_SPACE_ON_FILESYSTEM -> Errno.ENOSPC;
        case SftpConstants.SSH_FX_QUOTA_EXCEEDED -> Errno.EDQUOT;
        default -> Errno.EIO;
      };
    }
    String range = length == 0 ? "" : " of " + length + " bytes at " + offset;
    return new NbdException(errno, "ssh: " + operation + range + " on " + where + " failed: " + rootMessage(e), e);
  }

  private static String rootMessage(Throwable e) {
    Throwable cause = e;
    while (cause.getCause() != null && cause.getCause() != cause) {
      cause = cause.getCause();
    }
    String message = cause.getMessage() != null ? cause.getMessage() : cause.getClass().getSimpleName();
    return cause == e || e.getMessage() == null ? message : e.getMessage() + " (" + message + ")";
  }

  /** Closes the handle, the SFTP channel and the session; a session that already died is fine. */
  @Override
  public void close() {
    try {
      if (sftp.isOpen()) {
        handle.close();
        sftp.close();
      }
      session.close(false).await(CLOSE_WAIT);
    } catch (IOException e) {
      LOG.debug("{}: closing: {}", where, e.getMessage());
      session.close(true);
    }
  }
}
