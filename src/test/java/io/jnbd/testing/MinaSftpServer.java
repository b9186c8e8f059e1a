package io.jnbd.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import org.apache.sshd.common.config.keys.KeyUtils;
import org.apache.sshd.common.config.keys.PublicKeyEntry;
import org.apache.sshd.common.keyprovider.KeyPairProvider;
import org.apache.sshd.server.SshServer;
import org.apache.sshd.server.session.ServerSession;
import org.apache.sshd.sftp.server.FileHandle;
import org.apache.sshd.sftp.server.SftpEventListener;
import org.apache.sshd.sftp.server.SftpFileSystemAccessor;
import org.apache.sshd.sftp.server.SftpSubsystemProxy;
import org.apache.sshd.sftp.server.SftpSubsystemFactory;

/**
 * An embedded SSH server (Apache MINA SSHD) with the SFTP subsystem over the local file system,
 * for what OpenSSH cannot be made to do in a test: password logins, a host key that changes, a
 * server that goes away in the middle of a copy and comes back on the same port.
 */
public final class MinaSftpServer implements AutoCloseable {
  private final String user;
  private final String password;
  private KeyPair hostKey;
  private final AtomicLong bytesRead = new AtomicLong();
  private volatile LongConsumer onRead = total -> {};
  private volatile boolean refuseWrites;
  private SshServer server;
  private int port;

  public MinaSftpServer(String user, String password) {
    this.user = user;
    this.password = password;
    this.hostKey = newHostKey();
    start(0);
  }

  private static KeyPair newHostKey() {
    try {
      return KeyUtils.generateKeyPair(KeyPairProvider.ECDSA_SHA2_NISTP256, 256);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  private void start(int wantedPort) {
    SshServer ssh = SshServer.setUpDefaultServer();
    ssh.setHost("127.0.0.1");
    ssh.setPort(wantedPort);
    ssh.setKeyPairProvider(KeyPairProvider.wrap(hostKey));
    ssh.setPasswordAuthenticator((name, secret, session) -> name.equals(user) && secret.equals(password));
    SftpSubsystemFactory sftp = new SftpSubsystemFactory();
    sftp.addSftpEventListener(new SftpEventListener() {
      @Override
      public void read(ServerSession session, String remoteHandle, FileHandle localHandle, long offset, byte[] data,
          int dataOffset, int dataLen, int readLen, Throwable thrown) {
        onRead.accept(bytesRead.addAndGet(Math.max(readLen, 0)));
      }
    });
    sftp.setFileSystemAccessor(new SftpFileSystemAccessor() {
      @Override
      public SeekableByteChannel openFile(SftpSubsystemProxy subsystem, FileHandle fileHandle, Path file, String handle,
          Set<? extends OpenOption> options, FileAttribute<?>... attrs) throws IOException {
        if (refuseWrites && options.contains(StandardOpenOption.WRITE)) {
          throw new AccessDeniedException(file.toString());
        }
        return SftpFileSystemAccessor.super.openFile(subsystem, fileHandle, file, handle, options, attrs);
      }
    });
    ssh.setSubsystemFactories(List.of(sftp));
    try {
      ssh.start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    server = ssh;
    port = ssh.getPort();
  }

  public int port() {
    return port;
  }

  /** The known_hosts line for the current host key. */
  public String knownHostsLine() {
    return "[127.0.0.1]:" + port + " " + PublicKeyEntry.toString(hostKey.getPublic());
  }

  /** From now on the server presents a different host key (it restarts on the same port to do so). */
  public void changeHostKey() {
    hostKey = newHostKey();
    stop();
    restart();
  }

  /** Called with the total bytes served by SFTP reads so far, after each read (on the server's thread). */
  public void onRead(LongConsumer action) {
    onRead = action;
  }

  /** From now on, opening a file for writing is refused with "permission denied". */
  public void refuseWrites() {
    refuseWrites = true;
  }

  /** Drops every session and stops listening. */
  public void stop() {
    try {
      server.stop(true);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Listens again on the same port with the same host key. */
  public void restart() {
    start(port);
  }

  @Override
  public void close() {
    stop();
  }
}
