mt
