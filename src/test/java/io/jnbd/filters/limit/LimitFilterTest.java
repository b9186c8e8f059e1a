package io.jnbd.filters.limit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.jnbd.api.Client;
import io.jnbd.api.ConfigException;
import io.jnbd.api.Export;
import io.jnbd.api.NbdException;
import io.jnbd.server.Stack;
import io.jnbd.testing.ArrayDisk;
import io.jnbd.testing.Stacks;
import java.util.List;
import org.junit.jupiter.api.Test;

class LimitFilterTest {
  private static final Client CLIENT = new Client(null);

  private static Stack stack(String... config) {
    return Stacks.configured(List.of(new LimitFilter()), new ArrayDisk(4096), config);
  }

  @Test
  void refusesBeforeTheHandshakeWhileTheLimitIsReached() throws Exception {
    Stack stack = stack();
    stack.preconnect(CLIENT, false);
    Export first = stack.open(false, "");
    assertThatThrownBy(() -> stack.preconnect(CLIENT, false)).isInstanceOf(NbdException.class).hasMessageContaining("too many clients");
    first.close();
    stack.preconnect(CLIENT, false);
  }

  @Test
  void refusesAtOpenAClientThatHeldBackItsHandshake() throws Exception {
    Stack stack = stack("limit=2");
    for (int i = 0; i < 3; i++) {
      stack.preconnect(CLIENT, false);
    }
    try (Export first = stack.open(false, ""); Export second = stack.open(false, "")) {
      assertThatThrownBy(() -> stack.open(false, "")).isInstanceOf(NbdException.class);
    }
    stack.open(false, "").close();
  }

  @Test
  void zeroIsNoLimit() throws Exception {
    Stack stack = stack("limit=0");
    for (int i = 0; i < 100; i++) {
      stack.open(false, "");
    }
    stack.preconnect(CLIENT, false);
  }

  @Test
  void badLimitNamesTheKey() {
    assertThatThrownBy(() -> new LimitFilter().config("limit", "-1")).isInstanceOf(ConfigException.class).hasMessageContaining("limit");
    assertThatThrownBy(() -> new LimitFilter().config("limit", "many")).isInstanceOf(ConfigException.class).hasMessageContaining("limit");
  }
}
